"""Step through the step notebooks in JupyterLab, in a real browser, as a user does: open, Run All, look.

    python scripts/lab.py                        # 01_clean, 02_train, 03_eval and 04_orchestrate (`make lab`)
    python scripts/lab.py 01_clean.ipynb         # some of them
    python scripts/lab.py --out build/lab        # where the screenshots and the report go (default: build/lab/)

JupyterLab starts headless on a copy of the project (its `pyproject.toml`, `README.md` and `nbs/`), with W&B offline
and no network, and Debian's `chromium` opens each notebook through playwright, picks Run > Run All Cells from the
menu, and waits for the kernel. Then, from what the page shows: no cell has an error output, every cell that draws
a plot shows an image that decodes, progress bars rendered (as widgets where `ipywidgets` is installed, as text where
it is not), and the run folders are where README says (the copy's `runs/`, none in `nbs/runs/`). A screenshot of
each notebook, scrolled to its last plot, goes to the output folder with `report.json`.

The notebooks are shown whole (`windowingMode: none`, set in a settings folder of the check's own): JupyterLab 4
otherwise leaves out of the page the cells that are out of view.
"""
from __future__ import annotations

import argparse, json, os, re, shutil, socket, subprocess, sys, tempfile, time, uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/"nbs"
OUT = ROOT/"build"/"lab"
STEP_NOTEBOOKS = ("01_clean.ipynb", "02_train.ipynb", "03_eval.ipynb", "04_orchestrate.ipynb")
OFFLINE = {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "HF_HUB_DISABLE_TELEMETRY": "1", "TOKENIZERS_PARALLELISM": "false"}
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # nothing reaches for the network
PLOT = re.compile(r"plt\.show\(\)|\bImage\(")  # a cell that draws (`plt.show()`) or shows a picture (`Image(...)`)


def chromium() -> str | None:
    "The Chromium to check with: $CHROMIUM, or Debian's `chromium` on the PATH."
    return os.environ.get("CHROMIUM") or next((p for n in CHROMIUM if (p := shutil.which(n))), None)


def copy_project(dest: Path) -> Path:
    "A copy of what a clone holds that the notebooks use: `pyproject.toml` (which makes it a checkout), `README.md`, `nbs/`."
    dest.mkdir(parents=True, exist_ok=True)
    for f in ("pyproject.toml", "README.md"): shutil.copy2(ROOT/f, dest/f)
    shutil.copytree(NBS, dest/"nbs", ignore=shutil.ignore_patterns("runs", "wandb", ".ipynb_checkpoints", "*.out.ipynb", ".quarto"))
    return dest


def plot_cells(nb: Path) -> list[int]:
    "Indexes (among code cells) of the cells that draw a picture: `plt.show()` or an `Image(...)` as the cell's value."
    cells = [c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]
    return [i for i, c in enumerate(cells) if PLOT.search("".join(c["source"]))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


class Lab:
    "JupyterLab, headless, serving `root`'s `nbs/` on loopback, with settings of its own (every cell in the page)."
    def __init__(self, root: Path, work: Path):
        self.root, self.port, self.token = root, _free_port(), uuid.uuid4().hex
        settings = work/"lab-settings"/"@jupyterlab"/"notebook-extension"
        settings.mkdir(parents=True, exist_ok=True)
        (settings/"tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
        news = work/"lab-settings"/"@jupyterlab"/"apputils-extension"
        news.mkdir(parents=True, exist_ok=True)
        (news/"notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        env = {**os.environ, **OFFLINE, "JUPYTERLAB_SETTINGS_DIR": str(work/"lab-settings"),
               "JUPYTERLAB_WORKSPACES_DIR": str(work/"lab-workspaces"), "JUPYTER_RUNTIME_DIR": str(work/"runtime")}
        env.pop("MPLBACKEND", None)  # the notebooks draw inline, as in a user's lab
        self.log = open(work/"lab.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={self.port}", "--ServerApp.ip=127.0.0.1",
             f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root/'nbs'}", "--allow-root",
             "--ServerApp.disable_check_xsrf=False", "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
            cwd=root/"nbs", env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self._wait()

    def _wait(self, timeout: float = 120):
        import urllib.request
        t = time.time()
        while time.time() - t < timeout:
            if self.proc.poll() is not None: raise RuntimeError(f"JupyterLab exited with {self.proc.returncode}: see {self.log.name}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/api/status?token={self.token}", timeout=2): return
            except OSError: time.sleep(0.5)
        raise TimeoutError(f"JupyterLab did not answer in {timeout} s: see {self.log.name}")

    def url(self, notebook: str) -> str: return f"http://127.0.0.1:{self.port}/lab/tree/{notebook}?token={self.token}&reset"

    def close(self):
        self.proc.terminate()
        try: self.proc.wait(20)
        except subprocess.TimeoutExpired: self.proc.kill()
        self.log.close()


# What the page shows, read in the browser: each code cell's prompt, its stderr text, progress widgets, pictures.
_CELLS_JS = """() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell')].map(c => ({
  prompt: (c.querySelector('.jp-InputArea-prompt') || {}).textContent || '',
  stderr: [...c.querySelectorAll('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')].map(o => o.textContent),
  widgets: c.querySelectorAll('.jp-OutputArea-output .widget-progress').length,
  html: c.querySelectorAll('.jp-OutputArea-output progress').length,
}))"""
_DECODED_JS = """async (i) => {
  const c = document.querySelectorAll('.jp-Notebook .jp-CodeCell')[i];
  return Promise.all([...c.querySelectorAll('.jp-OutputArea-output img')].map(async e => {
    try { await e.decode(); return e.naturalWidth; } catch { return 0; } }));
}"""
_BUSY_JS = "() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputArea-prompt')].map(p => p.textContent.trim())"
_STARTED_JS = "() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputArea-prompt')].some(p => /\\[(\\*|\\d+)\\]/.test(p.textContent))"
_KERNEL_IDLE_JS = "() => [...document.querySelectorAll('.jp-StatusBar-TextItem, .jp-StatusBar-GroupItem')].some(e => /\\|\\s*Idle/.test(e.textContent))"


def _menu(page, menu: str, item: str):
    "Pick `menu` > `item` from JupyterLab's menu bar, as a user does."
    page.click(f".lm-MenuBar-item:has-text('{menu}')")
    page.locator(".lm-Menu-item", has=page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$"))).first.click()


def run_all(page, lab: Lab, notebook: str, timeout: float, shots: Path) -> tuple[list[dict], dict]:
    """Open `notebook`, Run > Run All Cells, wait until every cell ran or one failed, then File > Save; the cells as shown,
    and the progress bars seen while it ran (most at once, of each kind: many go away when their work is done)."""
    page.goto(lab.url(notebook), wait_until="domcontentloaded")
    page.wait_for_selector(".jp-Notebook .jp-CodeCell", timeout=120_000)
    page.wait_for_function(_KERNEL_IDLE_JS, timeout=300_000)  # the status bar says "Python 3 (ipykernel) | Idle": it is up
    page.locator(".jp-Notebook .jp-Cell").first.click()  # the notebook has the focus
    for attempt in range(3):  # a busy machine may take a while to enable the menu: look for the first cell to start
        _menu(page, "Run", "Run All Cells")
        try:
            page.wait_for_function(_STARTED_JS, timeout=60_000); break
        except Exception:
            page.keyboard.press("Escape")
    else:
        page.screenshot(path=str(shots/f"{Path(notebook).stem}-not-started.png"))
        raise TimeoutError(f"{notebook}: Run > Run All Cells started nothing, three times")
    t, seen = time.time(), {"widgets": 0, "text": 0, "html": 0}
    while True:
        seen = {k: max(v, progress_bars(page.evaluate(_CELLS_JS))[k]) for k, v in seen.items()}
        prompts = page.evaluate(_BUSY_JS)
        idle = page.query_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']") is not None
        ran = [re.fullmatch(r"\[\d+\]:", p) is not None for p in prompts]
        if idle and not any("*" in p for p in prompts) and ran and ran[0]: break  # done (all ran, or stopped at an error)
        if time.time() - t > timeout:
            page.screenshot(path=str(shots/f"{Path(notebook).stem}-timeout.png"))
            raise TimeoutError(f"{notebook}: still running after {timeout} s (prompts {prompts})")
        time.sleep(1)
    time.sleep(1)  # the last outputs are drawn
    saved = lab.root/"nbs"/notebook
    mtime = saved.stat().st_mtime
    _menu(page, "File", "Save Notebook")
    for _ in range(60):
        if saved.stat().st_mtime != mtime: break
        time.sleep(0.5)
    shown = page.evaluate(_CELLS_JS)
    return shown, {k: max(v, progress_bars(shown)[k]) for k, v in seen.items()}


def check_notebook(saved: dict, shown: list[dict], plots: list[int], decoded: dict[int, list[int]], name: str) -> list[str]:
    "What the notebook holds after Run All (as JupyterLab saved it) and what the page shows, against what a user should see."
    problems = []
    code = [c for c in saved["cells"] if c["cell_type"] == "code"]
    for i, c in enumerate(code):
        for o in c.get("outputs", []):
            if o.get("output_type") == "error": problems.append(f"{name}: code cell {i + 1} shows an error: {o.get('ename')}: {o.get('evalue', '')[:300]}")
    if idle := [i + 1 for i, c in enumerate(code) if c.get("execution_count") is None]:
        problems.append(f"{name}: {len(idle)} code cells did not run (cells {idle[0]}" + (f" to {idle[-1]})" if len(idle) > 1 else ")"))
    if len(shown) != len(code): problems.append(f"{name}: the page shows {len(shown)} code cells, the notebook has {len(code)}")
    for i in plots:
        if not any(w > 0 for w in decoded.get(i, [])): problems.append(f"{name}: code cell {i + 1} draws a plot, and shows no image that decodes")
    return problems


def progress_bars(shown: list[dict]) -> dict:
    "Progress bars shown: tqdm's as widgets (ipywidgets installed) or as text (`nn%|###| n/m` on stderr), and HTML ones (the Trainer's)."
    return {"widgets": sum(c["widgets"] for c in shown), "html": sum(c["html"] for c in shown),
            "text": sum(1 for c in shown for s in c["stderr"] if re.search(r"\d+%\|", s))}


TRAINS = ("02_train.ipynb", "03_eval.ipynb", "04_orchestrate.ipynb")  # Run All fine-tunes a model: long work, shown as it goes


def check_progress(name: str, seen: dict, widgets: bool) -> list[str]:
    "Long work shows its progress: tqdm's bars in the kind the kernel can show (widgets or text, never the other), the Trainer's bar."
    problems = []
    if seen["widgets" if widgets else "text"] == 0 and name in TRAINS:
        problems.append(f"{name}: no progress bar was shown ({'widgets' if widgets else 'text'} expected: ipywidgets is {'' if widgets else 'not '}installed)")
    if seen["text" if widgets else "widgets"]:
        problems.append(f"{name}: progress bars as {'text' if widgets else 'widgets'}, though ipywidgets is {'' if widgets else 'not '}installed")
    if name in TRAINS and not seen["html"]: problems.append(f"{name}: the training's progress bar was not shown")
    return problems


def widgets_installed() -> bool:
    return subprocess.run([sys.executable, "-c", "import ipywidgets"], capture_output=True).returncode == 0


def check(
    notebooks: tuple[str, ...] = STEP_NOTEBOOKS,  # notebooks of nbs/
    out: Path = OUT,  # screenshots and report.json
    browser: str | None = None,  # Chromium's path (default: `chromium()`)
    timeout: float = 900,  # seconds a notebook may run
    executed: Path | None = None,  # also keep each notebook as JupyterLab saved it here (the docs can reuse them)
    project: Path | None = None,  # a copy of the project to work in (`copy_project`), kept; default: a new one, removed after
) -> dict:
    "Run All of each notebook in JupyterLab in headless Chromium, on a copy of the project; the report, with any problems."
    from playwright.sync_api import sync_playwright
    out = Path(out).absolute()
    shutil.rmtree(out, ignore_errors=True); out.mkdir(parents=True)
    work = Path(tempfile.mkdtemp(prefix="finetune-nb-lab-"))
    root = Path(project) if project else copy_project(work/"project")
    report = {"project": str(root), "ipywidgets": widgets_installed(), "notebooks": {}, "problems": []}
    lab = Lab(root, work)
    try:
        with sync_playwright() as pw:
            b = pw.chromium.launch(executable_path=browser or chromium(), args=CHROMIUM_ARGS)
            page = b.new_page(viewport={"width": 1400, "height": 1000})
            script_errors = []
            page.on("pageerror", lambda e: script_errors.append(str(e)))
            for name in notebooks:
                before = set((root/"runs").iterdir()) if (root/"runs").is_dir() else set()
                t = time.time()
                shown, bars = run_all(page, lab, name, timeout, out)
                plots = plot_cells(NBS/name)
                decoded = {i: page.evaluate(_DECODED_JS, i) for i in plots}
                saved = json.loads((root/"nbs"/name).read_text())
                problems = check_notebook(saved, shown, plots, decoded, name)
                problems += check_progress(name, bars, report["ipywidgets"])
                runs = sorted(p.name for p in set((root/"runs").iterdir()) - before) if (root/"runs").is_dir() else []
                if not runs: problems.append(f"{name}: no run folder in {root/'runs'} (README: the checkout's runs/)")
                if (root/"nbs"/"runs").exists(): problems.append(f"{name}: a run folder landed in nbs/runs/")
                if plots:  # the last picture in view, as a user scrolled down to it
                    page.locator(".jp-Notebook .jp-CodeCell").nth(plots[-1]).scroll_into_view_if_needed()
                page.screenshot(path=str(out/f"{Path(name).stem}.png"))
                if executed: shutil.copy2(root/"nbs"/name, Path(executed)/name)  # the notebook as JupyterLab saved it
                _menu(page, "Kernel", "Shut Down Kernel")  # its memory back before the next notebook
                report["notebooks"][name] = {"cells": len(shown), "plots": len(plots), "progress_bars": bars, "runs": runs,
                                             "seconds": round(time.time() - t, 1), "problems": problems}
                report["problems"] += problems
            report["problems"] += [f"script error in the page: {e}" for e in script_errors]
            b.close()
    finally:
        lab.close()
        shutil.rmtree(work, ignore_errors=True)
    report["screenshots"] = sorted(str(p) for p in out.glob("*.png"))
    (out/"report.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="*", default=list(STEP_NOTEBOOKS), help="notebooks in nbs/ (default: the four steps)")
    ap.add_argument("--out", type=Path, default=OUT, help="screenshots and report.json (default: build/lab/)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds a notebook may take (default: 900)")
    a = ap.parse_args(argv)
    if not chromium():
        print("lab: no Chromium found (apt-get install chromium, or set CHROMIUM): the JupyterLab check was skipped")
        return
    r = check(tuple(a.notebooks), a.out, timeout=a.timeout)
    for name, n in r["notebooks"].items():
        print(f"lab: {name}: {n['cells']} code cells ran, {n['plots']} plots shown, progress bars {n['progress_bars']}, "
              f"run folders {n['runs']}, {n['seconds']} s")
    if r["problems"]: raise SystemExit("lab: the JupyterLab check found:\n  " + "\n  ".join(r["problems"]))
    print(f"lab: no problems; screenshots: {', '.join(r['screenshots'])}")


if __name__ == "__main__": main()
