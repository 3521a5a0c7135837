"""Run every notebook once, headless, the way users run them: papermill, cwd `nbs/`, default parameters;
then build the docs site from those executed notebooks (scripts/docs.py, as `make docs` does) and open it
in headless Chromium.

The notebooks' cells hold the unit examples (`test_eq`, `test_fail`); a failing example fails its
notebook's test here, with the failing cell's traceback in the message.
"""
import os, re
from pathlib import Path

import papermill as pm
import pytest

from conftest import NBS, docs_script

PLOTS = {"01_clean.ipynb": 1, "02_train.ipynb": 1, "03_eval.ipynb": 1, "04_orchestrate.ipynb": 1}
NOTEBOOKS = sorted(p.name for p in NBS.glob("*.ipynb") if not p.name.startswith("_"))


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    "The executed notebooks, kept for the docs site (this file's tests run in order, on one worker)."
    return tmp_path_factory.mktemp("executed")


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name, executed):
    out = executed/name
    env = {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline", "MPLBACKEND": "Agg"}  # the notebooks plot inline regardless
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        pm.execute_notebook(NBS/name, out, cwd=str(NBS), kernel_name="python3", progress_bar=False,
                            log_output=False, request_save_on_cell_execute=False)
    except pm.PapermillExecutionError as e:
        tb = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(e.traceback[-3:]))
        pytest.fail(f"{name}, cell {e.exec_count}: {e.ename}: {e.evalue}\n{tb}", pytrace=False)
    finally:
        for k, v in old.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v
    assert out.exists()
    if name in PLOTS:  # the pipeline notebooks show their results as figures in the executed notebook
        import nbformat
        images = [o for c in nbformat.read(out, as_version=4).cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
        assert len(images) >= PLOTS[name], f"{name}: {len(images)} figures"


@pytest.fixture(scope="module")
def site(executed, tmp_path_factory):
    "The docs site built as `make docs` builds it, from the notebooks executed above (any missing one is executed)."
    docs, out = docs_script(), tmp_path_factory.mktemp("site")/"site"
    with pytest.MonkeyPatch.context() as mp:
        for k, v in {"HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}.items(): mp.setenv(k, v)
        docs.build(out, reuse=executed, work=out.parent/"work")
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
