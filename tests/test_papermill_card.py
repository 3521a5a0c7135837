"""The design's headless use, as written: `papermill 04_orchestrate.ipynb out.ipynb -p dataset ...`.

From `nbs/`, from the repository root and from a folder outside the checkout, with no `--cwd` and no `runs_dir`:
relative paths mean what they mean in the shell, and the run folder follows one rule (`finetune_nb.core.runs_root`).
The runs happen in a scratch copy of the checkout, so nothing lands in this one.
"""
import json, os, re, shutil, subprocess, sys
from pathlib import Path

import pytest

from conftest import NBS, ROOT
from finetune_nb.core import sample_data
from finetune_nb.testing import tiny_deberta

PAPERMILL = Path(sys.executable).parent/"papermill"
TINY = ["-p", "epochs", "1", "-p", "max_train_samples", "48", "-p", "max_eval_samples", "24", "-p", "threads", "1",
        "-p", "wandb_mode", "disabled", "-p", "name", "card"]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    "A scratch copy of the checkout (what marks it: pyproject.toml beside nbs/), the bundled sample in data/, a tiny base model."
    d = tmp_path_factory.mktemp("card")
    clone = d/"clone"
    shutil.copytree(NBS, clone/"nbs", ignore=shutil.ignore_patterns("runs", "wandb", ".ipynb_checkpoints", "*.out.ipynb"))
    shutil.copy(ROOT/"pyproject.toml", clone/"pyproject.toml")
    (clone/"data").mkdir()
    shutil.copy(sample_data(), clone/"data"/"sample.jsonl")
    outside = d/"elsewhere"
    outside.mkdir()
    shutil.copy(sample_data(), outside/"sample.jsonl")
    return {"clone": clone, "outside": outside, "base": tiny_deberta(d/"base", ["x", "y"])}


def card_command(notebook: str, dataset: str, base: Path) -> list[str]:
    return [str(PAPERMILL), notebook, "out.ipynb", "-p", "dataset", dataset, "-p", "base_model", str(base), *TINY]


@pytest.mark.slow
@pytest.mark.parametrize("where", ["nbs", "root", "outside"])
def test_the_cards_papermill_command_runs_from_anywhere(checkout, where):
    "Exit 0, run.json `done`, the run folder in the checkout's runs/ (inside it) or ./runs (outside), none in nbs/runs."
    clone, base = checkout["clone"], checkout["base"]
    cwd, notebook, dataset, runs = {
        "nbs": (clone/"nbs", "04_orchestrate.ipynb", "../data/sample.jsonl", clone/"runs"),
        "root": (clone, "nbs/04_orchestrate.ipynb", "data/sample.jsonl", clone/"runs"),
        "outside": (checkout["outside"], str(clone/"nbs"/"04_orchestrate.ipynb"), "sample.jsonl", checkout["outside"]/"runs"),
    }[where]
    before = set(runs.iterdir()) if runs.is_dir() else set()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(card_command(notebook, dataset, base), cwd=cwd, capture_output=True, text=True, timeout=600, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    (run,) = set(runs.iterdir()) - before - {runs/"hub"}
    record = json.loads((run/"run.json").read_text())
    assert record["status"] == "done" and list(record["steps"]) == ["clean", "train", "eval"]
    assert run.name.endswith("-card") and record["settings"]["dataset"] == dataset  # the path as the shell gave it ...
    assert record["results"]["data"]["lines"] == len(sample_data().read_bytes().splitlines())  # ... read from there
    assert not (clone/"nbs"/"runs").exists()
    cells = json.loads((cwd/"out.ipynb").read_text())["cells"]
    last = [c for c in cells if c["cell_type"] == "code"][-1]  # the output notebook ends with the run's summary
    shown = "".join("".join(o.get("data", {}).get("text/markdown", [])) for o in last["outputs"])
    assert shown.startswith(f"## finetune_nb run `{run.name}`: done"), shown[:200]
    assert not any(o.get("output_type") == "error" for c in cells for o in c.get("outputs", []))


def test_the_docs_give_the_cards_command():
    "Every papermill example of 04_orchestrate in README, the GPU guide and the notebook is the card's command: no --cwd, no runs_dir."
    docs = {"README.md": (ROOT/"README.md").read_text(), "nbs/gpu.md": (NBS/"gpu.md").read_text(),
            "index.ipynb": "\n".join("".join(c["source"]) for c in json.loads((NBS/"index.ipynb").read_text())["cells"]),
            "04_orchestrate.ipynb": "\n".join("".join(c["source"]) for c in json.loads((NBS/"04_orchestrate.ipynb").read_text())["cells"])}
    found = 0
    for name, text in docs.items():
        text = text.replace("\\\n", " ")  # a command continued on the next line is one command
        for line in text.splitlines():
            if not (m := re.search(r"papermill(\s+\S*04_orchestrate\.ipynb.*)", line)): continue
            found += 1
            cmd = m.group(1)
            assert re.match(r"\s+(nbs/)?04_orchestrate\.ipynb\s+\S+\.ipynb\s+-p\s+dataset\s", cmd), (name, line)
            assert "--cwd" not in cmd and "runs_dir" not in cmd, (name, line)
    assert found >= 4, found  # README, the GPU guide and the notebook's two (from the root and from nbs/)
    assert not list(NBS.glob("0[5-7]_*.ipynb")) and {p.name for p in NBS.glob("0[1-4]_*.ipynb")} == {
        "01_clean.ipynb", "02_train.ipynb", "03_eval.ipynb", "04_orchestrate.ipynb"}
