"""Run every notebook once, headless, the way users run them, in a scratch copy of the checkout (its run folders land in
the copy's `runs/`, never in this one's): the four step notebooks in JupyterLab, opened in headless Chromium and Run All
from the menu (scripts/lab.py; with papermill where there is no Chromium), the others with papermill, cwd `nbs/`, default
parameters. Then build the docs site from those executed notebooks (scripts/docs.py, as `make docs` does) and open it
in headless Chromium.

The notebooks' cells hold the unit examples (`test_eq`, `test_fail`); a failing example fails its
notebook's test here, with the failing cell's traceback in the message. Each notebook is executed once, whichever
test asks first, so the tests of this file pass in any order.
"""
import json, os, re, shutil
from pathlib import Path

import papermill as pm
import pytest

from conftest import NBS, ROOT, docs_script

PLOTS = {"01_clean.ipynb": 1, "02_train.ipynb": 1, "03_eval.ipynb": 1, "04_orchestrate.ipynb": 1}
NOTEBOOKS = sorted(p.name for p in NBS.glob("*.ipynb") if not p.name.startswith("_"))
OFFLINE = {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "MPLBACKEND": "Agg"}  # the notebooks plot inline regardless


def lab_script():
    "scripts/lab.py, the JupyterLab check, as a module."
    import importlib.util
    spec = importlib.util.spec_from_file_location("lab", ROOT/"scripts"/"lab.py")
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod


class Executions:
    "Each notebook executed once, on demand, into `out`: the step notebooks in JupyterLab (all four at once), the rest by papermill."
    def __init__(self, root: Path, out: Path, shots: Path):
        self.root, self.out, self.shots, self.done, self.lab = root, out, shots, {}, None

    def lab_report(self) -> dict | None:
        "The JupyterLab check's report on the step notebooks (None without Chromium): run once, its notebooks kept."
        lab = lab_script()
        if not lab.chromium() or os.environ.get("FINETUNE_NB_LAB") == "0": return None  # FINETUNE_NB_LAB=0: papermill only
        if self.lab is None:
            try: self.lab = lab.check(lab.STEP_NOTEBOOKS, self.shots, executed=self.out, project=self.root)
            except Exception as e:  # said once, for every step notebook: the check is not run again
                self.lab = {"notebooks": {}, "problems": [f"the JupyterLab check stopped: {type(e).__name__}: {e}"]}
            for name in lab.STEP_NOTEBOOKS:
                problems = self.lab["notebooks"].get(name, {}).get("problems", self.lab["problems"] or ["not run"])
                self.done[name] = f"{name} in JupyterLab: " + "; ".join(problems) if problems else self.out/name
        return self.lab

    def __call__(self, name: str) -> Path:
        "The executed notebook `name`; fails the calling test with the notebook's error."
        if name not in self.done:
            if name in lab_script().STEP_NOTEBOOKS and self.lab_report() is not None: pass
            else: self.done[name] = self._papermill(name)
        if isinstance(self.done[name], str): pytest.fail(self.done[name], pytrace=False)
        return self.done[name]

    def _papermill(self, name: str) -> Path | str:
        from fastcore.xtras import modified_env
        out = self.out/name
        with modified_env(**OFFLINE):
            try:
                pm.execute_notebook(self.root/"nbs"/name, out, cwd=str(self.root/"nbs"), kernel_name="python3", progress_bar=False,
                                    log_output=False, request_save_on_cell_execute=False)
            except pm.PapermillExecutionError as e:
                tb = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(e.traceback[-3:]))
                return f"{name}, cell {e.exec_count}: {e.ename}: {e.evalue}\n{tb}"
        return out


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    "The executions of this file's tests, in a scratch copy of the checkout (pyproject.toml, README.md, nbs/)."
    d = tmp_path_factory.mktemp("notebooks")
    root = lab_script().copy_project(d/"clone")
    (d/"executed").mkdir()
    return Executions(root, d/"executed", d/"lab")


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name, executed):
    out = executed(name)
    assert out.exists()
    if name in PLOTS:  # the pipeline notebooks show their results as figures in the executed notebook
        import nbformat
        images = [o for c in nbformat.read(out, as_version=4).cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
        assert len(images) >= PLOTS[name], f"{name}: {len(images)} figures"
    assert not (executed.root/"nbs"/"runs").exists() and not (NBS/"runs").exists()  # runs land in the checkout's runs/


@pytest.mark.slow
def test_jupyterlab_step_through(executed):
    "Each step notebook in JupyterLab: Run All from the menu, no error output, every plot shown, progress bars, runs/ as README says."
    report = executed.lab_report()
    if report is None and os.environ.get("FINETUNE_NB_LAB") == "0": pytest.skip("FINETUNE_NB_LAB=0: the JupyterLab check is off")
    if report is None:
        pytest.skip("no Chromium: `apt-get install chromium` (Debian; .ci/run installs it), or set CHROMIUM=/path/to/chrome")
    assert report["problems"] == [], "\n".join(report["problems"])
    lab = lab_script()
    assert list(report["notebooks"]) == list(lab.STEP_NOTEBOOKS)
    for name, n in report["notebooks"].items():
        assert n["cells"] == sum(c["cell_type"] == "code" for c in json.loads((NBS/name).read_text())["cells"]), name
        assert n["plots"] == len(lab.plot_cells(NBS/name)) >= 1, name
        assert n["runs"] and all((executed.root/"runs"/r).is_dir() for r in n["runs"]), name  # the copy's runs/, by the rule
    assert [r.split("-")[-1] for r in report["notebooks"]["01_clean.ipynb"]["runs"]] == ["clean"]
    from PIL import Image
    for shot in report["screenshots"]:
        with Image.open(shot) as im:
            assert im.size == (1400, 1000) and len(im.convert("L").getcolors(256)) > 20, shot  # a rendered lab, not a blank page


@pytest.fixture(scope="module")
def site(executed, tmp_path_factory):
    "The docs site built as `make docs` builds it, from the notebooks executed above (each executed now if no test has yet)."
    for name in NOTEBOOKS: executed(name)
    docs, out = docs_script(), tmp_path_factory.mktemp("site")/"site"
    with pytest.MonkeyPatch.context() as mp:
        for k, v in {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}.items(): mp.setenv(k, v)
        docs.build(out, reuse=executed.out, work=out.parent/"work")
    return out


@pytest.mark.slow
def test_docs_site_builds(site):
    "A page per notebook and guide, named as Quarto names them; show_doc and prose rendered, no directive left."
    docs = docs_script()
    pages = {p.name for p in site.glob("*.html")}
    want = {f"{docs.page_name(n)}.html" for n in NOTEBOOKS} | {f"{p.stem}.html" for p in NBS.glob("*.md")}
    assert want <= pages, sorted(want - pages)
    assert {"clean.html", "api.html", "cli.html", "gpu.html", "reliability.html", "index.html"} <= pages
    clean = (site/"clean.html").read_text(encoding="utf-8")
    assert 'id="cleansettings"' in clean and "Settings of the cleaning step." in clean  # show_doc, with nbdev's anchor
    assert "#| " not in clean and "def _check_accounting" not in clean  # directives gone, exported code hidden
    api = (site/"api.html").read_text(encoding="utf-8")
    import importlib
    from finetune_nb._modidx import d
    documented = [(mod, n) for mod in d["syms"] for m in [importlib.import_module(mod)] for n in m.__all__
                  if callable(getattr(m, n)) and getattr(getattr(m, n), "__module__", mod) == mod]
    assert len(documented) > 150 and [x for x in documented if f'id="{x[1].lower()}"' not in api] == []  # every exported name
    cli = (site/"cli.html").read_text(encoding="utf-8")
    assert "usage: finetune-nb" in cli and "--label-issue-folds" in cli  # generated from --help


@pytest.mark.slow
def test_docs_site_in_chromium(site):
    "Every page loads, every internal link and anchor resolves, no traceback, a plot on each step page; screenshots."
    docs = docs_script()
    if not docs.chromium():
        pytest.skip("no Chromium: `apt-get install chromium` (Debian; .ci/run installs it), or set CHROMIUM=/path/to/chrome")
    report = docs.check(site)
    assert report["problems"] == [], "\n".join(report["problems"])
    assert report["pages"] >= len(NOTEBOOKS) + 2 and report["links"] > 500, report
    assert set(docs.STEP_PAGES) <= {Path(k).stem for k in report["images"]}, report["images"]
    from PIL import Image
    for shot in ("home", "clean"):
        with Image.open(site/"_screenshots"/f"{shot}.png") as im:
            assert im.size == (1280, 900) and len(im.convert("L").getcolors(256)) > 20, shot  # a rendered page, not a blank one
