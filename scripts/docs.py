"""Build the documentation site offline, from the notebooks, and check it in a real browser.

    python scripts/docs.py                 # execute, process, render into site/, then check it (`make docs`)
    python scripts/docs.py --no-check      # build only
    python scripts/docs.py --check-only    # check an existing site/

No Quarto and no network: the notebooks are executed on their tiny defaults with papermill (cwd `nbs/`, W&B
offline), processed by nbdev's own processors (the ones `nbdev-docs` runs before Quarto: `#| hide` and
`#| export` cells dropped, a `show_doc` after every exported name, doc links), turned into what MkDocs with
mkdocs-jupyter reads (Quarto's cell options become cell tags), and rendered with mkdocs-material. Pages are
named as Quarto names them (`01_clean.ipynb` -> `clean.html`), so nbdev's doc links work in both sites.
One page per notebook (the API reference `api.ipynb` and the CLI reference `cli.ipynb` among them, generated
as they run), and the guides in `nbs/*.md`. The check opens every page in headless Chromium
(Debian's `chromium`) and saves screenshots under `<site>/_screenshots/`.
"""
from __future__ import annotations

import argparse, os, re, shutil, subprocess, sys, tempfile, warnings
from pathlib import Path

import yaml
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/"nbs"
SITE = ROOT/"site"
OFFLINE = {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "HF_HUB_DISABLE_TELEMETRY": "1", "MPLBACKEND": "Agg"}
DOC_URL = "https://finetune-nb.github.io/finetune_nb/"  # nbdev's doc links point here (pyproject's Documentation)
STEP_PAGES = ("clean", "train", "eval", "orchestrate")  # the pipeline pages: each shows what its step draws
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")


def page_name(notebook: str | Path) -> str:
    "The page a notebook becomes, as Quarto (and so nbdev's doc links) name it: `01a_pairs.ipynb` -> `pairs`."
    return re.sub(r"^\d+[a-zA-Z0-9]*_", "", Path(notebook).stem)


def notebooks() -> list[Path]:
    return sorted(p for p in NBS.glob("*.ipynb") if not p.name.startswith("_"))


## Executing

def execute(dest: Path, reuse: Path | None = None) -> dict[str, Path]:
    "Each notebook executed on its defaults into `dest` (one already executed into `reuse` is taken as it is)."
    import papermill as pm
    from fastcore.xtras import modified_env
    dest.mkdir(parents=True, exist_ok=True)
    done = {}
    with modified_env(**OFFLINE):
        for nb in tqdm(notebooks(), desc="executing notebooks", unit="nb"):
            out = dest/nb.name
            if reuse is not None and (reuse/nb.name).exists(): shutil.copy2(reuse/nb.name, out)
            else:
                try: pm.execute_notebook(nb, out, cwd=str(NBS), kernel_name="python3", progress_bar=False,
                                         log_output=False, request_save_on_cell_execute=False,
                                         extra_arguments=["--IPKernelApp.log_level=ERROR"])
                except pm.PapermillExecutionError as e:
                    raise SystemExit(f"docs: {nb.name} failed in cell {e.exec_count}: {e.ename}: {e.evalue}") from None
            done[nb.name] = out
    return done


## Processing: nbdev's processors, then what mkdocs-jupyter understands

_OPTION = re.compile(r"^#\|\s*([\w-]+)\s*:\s*(.*?)\s*$")
_HEADING = re.compile(r"^(#{2,4}) (\S+)\s*$", re.M)


def _quarto_options(cell) -> None:
    "Quarto's cell options (`#| echo: false`...) as the cell tags mkdocs-jupyter removes by; the option lines dropped."
    lines, opts = cell.source.splitlines(), {}
    while lines and (m := _OPTION.match(lines[0])):
        opts[m.group(1)] = m.group(2).strip("\"'").lower()
        lines.pop(0)
    cell.source = "\n".join(lines)
    tags = cell.setdefault("metadata", {}).setdefault("tags", [])
    if opts.get("include") == "false": tags.append("remove_cell")
    if opts.get("echo") == "false": tags.append("remove_input")
    if opts.get("output") == "false": tags.append("remove_output")


def _local_links(text: str) -> str:
    "nbdev's doc links to the published site, made relative: the offline site is the same pages."
    return text.replace(DOC_URL, "")


def _anchored(md: str) -> str:
    "A `show_doc` heading with the anchor nbdev's doc links use (the name, lower case): `#cleansettings`."
    return _HEADING.sub(lambda m: f'<a id="{m.group(2).lower()}"></a>\n\n{m.group(1)} {m.group(2)}', md)


_QUARTO_ATTRS = re.compile(r"\)\{[^}\n]*\}")  # `[source](url){target="_blank" ...}`: Pandoc's link attributes

_CELL_KEYS = {"cell_type", "id", "metadata", "source", "outputs", "execution_count", "attachments"}

def for_mkdocs(nb) -> None:
    "Turn an nbdev-processed notebook into one mkdocs-jupyter renders as Quarto would."
    cells = []
    for cell in nb.cells:
        if cell.cell_type == "raw" and cell.source.startswith("---"):  # nbdev's front matter: the title and summary
            fm = yaml.safe_load(cell.source.strip().strip("-")) or {}
            src = f"# {fm.get('title', '')}\n\n> {fm['description']}" if fm.get("description") else f"# {fm.get('title', '')}"
            cell.cell_type, cell.source = "markdown", src
        elif cell.cell_type == "code":
            _quarto_options(cell)
            for o in cell.get("outputs", []):
                md = o.get("data", {}).get("text/markdown")
                if md is not None: o["data"]["text/markdown"] = _anchored(_local_links(_QUARTO_ATTRS.sub(")", "".join(md))))
        else: cell.source = _local_links(cell.source)
        for k in [k for k in cell if k not in _CELL_KEYS]: del cell[k]  # nbdev's working marks (`has_sd`, `idx_`...)
        cell["metadata"] = {"tags": cell["metadata"]["tags"]} if cell.get("metadata", {}).get("tags") else {}  # timings: not valid nbformat
        cells.append(cell)
    nb.cells = cells


_MD_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")

def _toc_anchors(path: Path) -> None:
    """An anchor before each heading whose id in the page's table of contents (as mkdocs-jupyter computes it) may
    differ from the heading's own (nbconvert's): headings with code in them, repeated headings."""
    import markdown
    from fastcore.nbio import read_nb, write_nb
    from mkdocs_jupyter.nbconvert2 import nb2md
    nb = read_nb(path)
    cells = nb.cells
    heads = []  # (cell, line index) of each Markdown heading, outside code fences
    for c in cells:
        if c.cell_type != "markdown": continue
        fence = False
        for i, line in enumerate(c.source.splitlines()):
            if line.lstrip().startswith(("```", "~~~")): fence = not fence
            elif not fence and _MD_HEADING.match(line): heads.append((c, i))
    md = markdown.Markdown(extensions=["toc"])
    md.convert(nb2md(str(path)))
    def flat(tokens): return [t for tok in tokens for t in (tok, *flat(tok["children"]))]
    toc = flat(md.toc_tokens)
    if len(toc) != len(heads): raise SystemExit(f"docs: {len(heads)} headings but {len(toc)} table-of-contents entries")
    for (c, i), tok in reversed(list(zip(heads, toc))):
        text = _MD_HEADING.match(c.source.splitlines()[i]).group(2)
        if re.search(r"[^\w\s-]", text) or re.search(r"_\d+$", tok["id"]):
            lines = c.source.splitlines()
            c.source = "\n".join(lines[:i] + [f'<a id="{tok["id"]}"></a>', ""] + lines[i:])
    write_nb(nb, path)


def process(executed: dict[str, Path], dest: Path) -> list[str]:
    "nbdev's doc processing of every executed notebook, written to `dest` as `<page>.ipynb`; returns the pages."
    from fastcore.nbio import read_nb, write_nb
    from nbdev.processors import FilterDefaults
    os.environ["IN_TEST"] = "1"  # as nbdev's own docs driver sets it
    pages, cwd = [], os.getcwd()
    os.chdir(NBS)  # as the notebooks ran; nbdev finds pyproject.toml from here
    try:
        for name, path in tqdm(sorted(executed.items()), desc="processing (nbdev)", unit="nb"):
            nb = read_nb(path)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                FilterDefaults()(nb)
            for_mkdocs(nb)
            write_nb(nb, dest/f"{page_name(name)}.ipynb")
            _toc_anchors(dest/f"{page_name(name)}.ipynb")
            pages.append(page_name(name))
    finally:
        os.chdir(cwd); os.environ.pop("IN_TEST", None)
    return pages


## Rendering

def build(out: Path = SITE, reuse: Path | None = None, work: Path | None = None) -> Path:
    "Execute, process and render the site into `out`; returns `out`."
    work = Path(work or tempfile.mkdtemp(prefix="finetune-nb-docs-"))
    src = work/"pages"
    if src.exists(): shutil.rmtree(src)
    src.mkdir(parents=True)
    pages = process(execute(work/"executed", reuse), src)
    for md in NBS.glob("*.md"):  # the guides: their links to notebooks follow the notebooks' new names
        text = re.sub(r"\]\(([\w-]+)\.ipynb", lambda m: f"]({page_name(m.group(1))}.ipynb", md.read_text(encoding="utf-8"))
        (src/md.name).write_text(text, encoding="utf-8")
    cfg = yaml.safe_load((ROOT/"mkdocs.yml").read_text())
    listed = {p for sec in cfg["nav"] for v in sec.values() for p in (v if isinstance(v, list) else [v])
              for p in (p.values() if isinstance(p, dict) else [p])}
    missing = sorted({f"{p}.ipynb" for p in pages} - listed)
    if missing: raise SystemExit(f"docs: mkdocs.yml's nav lacks {missing}")
    cfg.update(docs_dir=str(src), site_dir=str(Path(out).absolute()))
    (work/"mkdocs.yml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    print("==> rendering with MkDocs", flush=True)
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-f", str(work/"mkdocs.yml")],
                   check=True, cwd=work, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})  # no banner about MkDocs 2
    return Path(out)


## Checking in a browser

def chromium() -> str | None:
    "The Chromium to check with: $CHROMIUM, or Debian's `chromium` on the PATH."
    return os.environ.get("CHROMIUM") or next((p for n in CHROMIUM if (p := shutil.which(n))), None)


def check(site: Path = SITE, browser: str | None = None) -> dict:
    """Open every page of `site` in headless Chromium: each loads, each internal link and anchor resolves, no output
    shows a traceback, each step page shows a plot that decodes; screenshots of the home and `clean` pages saved."""
    from playwright.sync_api import sync_playwright
    site = Path(site).absolute()
    pages = sorted(p for p in site.rglob("*.html") if "assets" not in p.parts and p.name != "404.html")
    shots = site/"_screenshots"
    shots.mkdir(exist_ok=True)
    problems, ids, links, images, errors = [], {}, [], {}, []
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=browser or chromium(), args=["--no-sandbox"])
        page = b.new_page(viewport={"width": 1280, "height": 900})
        page.on("pageerror", lambda e: errors.append(f"{page.url}: {e}"))
        for p in tqdm(pages, desc="checking pages", unit="page"):
            rel = p.relative_to(site).as_posix()
            resp = page.goto(p.as_uri(), wait_until="load")
            if resp is not None and not resp.ok: problems.append(f"{rel}: did not load ({resp.status})")
            if not page.title(): problems.append(f"{rel}: no title")
            ids[rel] = set(page.eval_on_selector_all("[id]", "es => es.map(e => e.id)"))
            text = page.inner_text("body")
            if "Traceback (most recent call last)" in text or page.query_selector(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']"):
                problems.append(f"{rel}: an output shows a traceback")
            for href in page.eval_on_selector_all("a[href]", "es => es.map(e => e.getAttribute('href'))"):
                links.append((rel, href))
            images[rel] = page.eval_on_selector_all(
                ".jp-OutputArea-output img, .output_png img, img[src^='data:image/png']",
                "async es => Promise.all(es.map(async e => { try { await e.decode(); return e.naturalWidth; } catch { return 0; } }))")
            if rel in ("index.html", "clean.html"):
                page.screenshot(path=str(shots/f"{Path(rel).stem if rel != 'index.html' else 'home'}.png"), full_page=False)
        b.close()
    for rel, href in links:
        if href.startswith(("http://", "https://", "mailto:", "javascript:")):
            if href.startswith(DOC_URL): problems.append(f"{rel}: a link to the online docs, not this site: {href}")
            continue
        path, _, frag = href.partition("#")
        target = (site/Path(rel).parent/path).resolve() if path else site/rel
        if target.is_dir(): target = target/"index.html"
        trel = target.relative_to(site).as_posix() if target.is_relative_to(site) else str(target)
        if not target.exists(): problems.append(f"{rel}: broken link {href}")
        elif frag and trel in ids and frag not in ids[trel]: problems.append(f"{rel}: broken anchor {href}")
    for step in STEP_PAGES:
        if not any(w > 0 for w in images.get(f"{step}.html", [])): problems.append(f"{step}.html: no plot image that decodes")
    problems += [f"script error: {e}" for e in errors]
    report = {"pages": len(pages), "links": len(links), "images": {k: len(v) for k, v in images.items() if v},
              "screenshots": sorted(str(p) for p in shots.glob("*.png")), "problems": problems}
    return report


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=SITE, help="where the site goes (default: site/)")
    ap.add_argument("--executed", type=Path, help="a folder of notebooks already executed on their defaults, to reuse")
    ap.add_argument("--no-check", action="store_true", help="build only; no browser check")
    ap.add_argument("--check-only", action="store_true", help="check the site in --out; build nothing")
    a = ap.parse_args(argv)
    if not a.check_only: build(a.out, a.executed)
    if a.no_check: return
    if not chromium():
        print("docs: no Chromium found (apt-get install chromium, or set CHROMIUM): the browser check was skipped")
        return
    r = check(a.out)
    print(f"docs: {r['pages']} pages, {r['links']} links, plots on {len(r['images'])} pages; screenshots: {', '.join(r['screenshots'])}")
    if r["problems"]: raise SystemExit("docs: the browser check found:\n  " + "\n  ".join(r["problems"]))
    print(f"docs: open {(a.out/'index.html').absolute()} in a browser")


if __name__ == "__main__": main()
