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


# --- the package map (nbs/map.ipynb): the picture in the docs is the import graph -------------------------------------

def declared_map() -> dict:
    "What nbs/map.ipynb draws: its first code cell's LAYERS, ASIDE, IMPORTS and FLOWS, as literals."
    import ast
    cells = [c for c in json.loads((NBS/"map.ipynb").read_text())["cells"] if c["cell_type"] == "code"]
    return {n.targets[0].id: ast.literal_eval(n.value) for n in ast.parse("".join(cells[0]["source"])).body}


def real_imports(root: Path = ROOT) -> dict[str, set[str]]:
    "Each module of the package under `root`: the package's modules it imports (grimp, in a process of its own)."
    code = ("import grimp, json; g = grimp.build_graph('finetune_nb', cache_dir=None); print(json.dumps({m.split('.')[1]: "
            "sorted({d.split('.')[1] for d in g.find_modules_directly_imported_by(m) if d.startswith('finetune_nb.')}) "
            "for m in g.modules if m.count('.') == 1 and m != 'finetune_nb._modidx'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, env={"PYTHONPATH": str(root)}, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return {k: set(v) for k, v in json.loads(out.stdout).items()}


def test_the_package_map_is_the_import_graph():
    "Every module drawn once, in import-linter's layers; every import drawn, and none that is not there; flows only between steps."
    import tomllib
    m, real = declared_map(), real_imports()
    drawn = [n for layer in m["LAYERS"] for n in layer] + list(m["ASIDE"])
    assert sorted(drawn) == sorted(real) and len(drawn) == len(set(drawn))
    assert {k: set(v) for k, v in m["IMPORTS"].items()} == real
    layers = tomllib.loads((ROOT/"pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]["layers"]
    assert [sorted(x.strip().split(".")[1] for x in layer.split("|")) for layer in layers] == [sorted(l) for l in m["LAYERS"]]
    steps = set(m["LAYERS"][3])
    assert steps == {"clean", "train", "evaluation"}
    for a, b, _ in m["FLOWS"]: assert {a, b} <= steps and b not in real[a] and a not in real[b]  # handed over, never imported


def test_an_import_the_map_lacks_is_caught(tmp_path):
    "The check can fail: a copy of the package whose metrics module also imports plots no longer matches the map."
    pkg = shutil.copytree(ROOT/"finetune_nb", tmp_path/"finetune_nb", ignore=shutil.ignore_patterns("__pycache__"))
    with open(pkg/"metrics.py", "a") as f: f.write("\nfrom finetune_nb import plots\n")
    real = real_imports(tmp_path)
    assert real["metrics"] == set(declared_map()["IMPORTS"]["metrics"]) | {"plots"}
