"""The package's shape: steps meet only through what they publish, and notebooks say what they are."""
import json, shutil, subprocess, sys
from pathlib import Path

import pytest

from conftest import NBS, ROOT

LINT = Path(sys.executable).parent/"lint-imports"


def lint(root: Path) -> subprocess.CompletedProcess:
    "Run import-linter on the `finetune_nb` package under `root`, with the contracts of this checkout's pyproject.toml."
    return subprocess.run([str(LINT), "--config", str(ROOT/"pyproject.toml"), "--no-cache"], capture_output=True, text=True,
                          cwd=root, env={"PYTHONPATH": str(root), "PATH": str(LINT.parent)}, timeout=120)


def test_steps_import_only_the_shared_base():
    res = lint(ROOT)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
    assert "2 kept, 0 broken" in res.stdout


@pytest.mark.parametrize("module, line", [("evaluation", "from finetune_nb.train import effective_max_length"),
                                          ("clean", "from finetune_nb import evaluation"),
                                          ("train", "from finetune_nb.orchestrate import main"),
                                          ("core", "import finetune_nb.testing")])
def test_a_step_importing_another_breaks_the_contract(tmp_path, module, line):
    "The contracts catch what they are for: a copy of the package with one forbidden import fails the check."
    pkg = shutil.copytree(ROOT/"finetune_nb", tmp_path/"finetune_nb", ignore=shutil.ignore_patterns("__pycache__"))
    with open(pkg/f"{module}.py", "a") as f: f.write(f"\n{line}\n")
    res = lint(tmp_path)
    assert res.returncode != 0 and "BROKEN" in res.stdout, res.stdout[-2000:]
    assert f"finetune_nb.{module}" in res.stdout


def test_every_notebook_opens_with_what_it_does():
    for nb in sorted(NBS.glob("*.ipynb")):
        first = json.loads(nb.read_text())["cells"][0]
        src = "".join(first["source"])
        assert first["cell_type"] == "markdown" and src.startswith("# ") and "\n> " in src, nb.name
