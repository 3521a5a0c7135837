"""Run every notebook once, headless, the way users run them: papermill, cwd `nbs/`, default parameters.

The notebooks' cells hold the unit examples (`test_eq`, `test_fail`); a failing example fails its
notebook's test here, with the failing cell's traceback in the message.
"""
import os, re
from pathlib import Path

import papermill as pm
import pytest

from conftest import NBS

PLOTS = {"01_clean.ipynb": 1, "02_train.ipynb": 1, "03_eval.ipynb": 1, "06_orchestrate.ipynb": 1}
NOTEBOOKS = sorted(p.name for p in NBS.glob("*.ipynb") if not p.name.startswith("_"))


@pytest.mark.slow
@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs(name, tmp_path):
    out = tmp_path/name
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
