"""Shared pytest set-up: everything runs offline, with W&B in offline mode and no real secrets, the same on every
machine and in any order: on the CPU, with a cold datasets cache of the session's own, a `python3` kernel that is this
environment's, torch's thread count restored after each test, and Hypothesis without deadlines."""
import json, os, sys, tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings as hypothesis_settings

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/"nbs"

# Offline by default: nothing in the test suite may reach the Hub or W&B.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# The same on every machine: tests never use a GPU (a CUDA box would quantise nothing and train with other floats), ...
os.environ["CUDA_VISIBLE_DEVICES"] = ""
# ... read no dataset cached by an earlier run or another worker (a cold cache, every session) ...
SESSION = Path(tempfile.mkdtemp(prefix="finetune-nb-tests-"))
os.environ["HF_DATASETS_CACHE"] = str(SESSION/"datasets-cache")
# ... and run notebooks in a `python3` kernel of this very environment, whatever kernelspecs the machine holds
# (a user's ~/.local/share/jupyter/kernels/python3 may start another Python).
KERNELS = SESSION/"jupyter"
(KERNELS/"kernels"/"python3").mkdir(parents=True)
(KERNELS/"kernels"/"python3"/"kernel.json").write_text(json.dumps(
    {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"], "display_name": "Python 3",
     "language": "python"}))
os.environ["JUPYTER_PATH"] = os.pathsep.join([str(KERNELS), *filter(None, [os.environ.get("JUPYTER_PATH")])])

# Hypothesis: no per-example deadline (two workers share two cores; a slow example is not a failure).
hypothesis_settings.register_profile("finetune-nb", deadline=None, suppress_health_check=[HealthCheck.too_slow])
hypothesis_settings.load_profile("finetune-nb")


import torch  # noqa: E402  (after CUDA_VISIBLE_DEVICES)
TORCH_THREADS = torch.get_num_threads()  # torch's default here: every test starts with it


@pytest.fixture(autouse=True)
def _torch_threads():
    "A test that sets torch's thread count (`threads=1`) leaves the default behind: no test depends on which ran before."
    yield
    if torch.get_num_threads() != TORCH_THREADS: torch.set_num_threads(TORCH_THREADS)


@pytest.fixture
def no_secrets(monkeypatch, tmp_path):
    "No HF token or W&B key in force: an empty HF home and netrc, and neither variable set."
    for k in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "WANDB_API_KEY"): monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path/"hf_token"))
    monkeypatch.setenv("NETRC", str(tmp_path/"netrc"))
    import huggingface_hub.constants as C
    monkeypatch.setattr(C, "HF_TOKEN_PATH", str(tmp_path/"hf_token"))
    return tmp_path


def assert_parameters_mirror(notebook: str, settings_cls):
    "The notebook's `parameters` cell has the dataclass's fields, in order, with the same defaults and help."
    import ast
    from dataclasses import fields
    import papermill as pm
    params = pm.inspect_notebook(str(NBS/notebook))
    want = {f.name: f for f in fields(settings_cls)}
    assert list(params) == list(want)
    defaults = settings_cls()
    for name, p in params.items():
        assert ast.literal_eval(p["default"]) == getattr(defaults, name), name
        assert p["help"] == want[name].metadata["help"], name
    _assert_run_cell_passes_every_parameter(notebook, settings_cls)


def _assert_run_cell_passes_every_parameter(notebook: str, settings_cls):
    "The cell that makes the settings passes each parameter to the field of its name (`name=name`), or all of them by `fields`."
    import ast, json
    from dataclasses import fields
    cells = ["".join(c["source"]) for c in json.loads((NBS/notebook).read_text())["cells"] if c["cell_type"] == "code"]
    (src,) = [c for c in cells if f"settings = {settings_cls.__name__}(" in c]
    if f"fields({settings_cls.__name__})" in src: return
    (call,) = [n for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == settings_cls.__name__]
    passed = {k.arg: k.value.id if isinstance(k.value, ast.Name) else None for k in call.keywords}
    assert passed == {f.name: f.name for f in fields(settings_cls)}, (notebook, set(passed) ^ {f.name for f in fields(settings_cls)})


# A tiny three-label corpus for the training and evaluation tests: 12 texts per label, none a near duplicate.
TOPICS = {"card": "my card {} has not arrived", "pin": "how do i change the pin {} on it", "loan": "can i borrow {} for a car"}
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima"]


# Training settings under which the tiny DeBERTa learns the three topics (test accuracy 1.0 in ~9 s on 2 cores; the same weights on every run): the
# evaluation tests need a model whose scores depend on the text, or a swap of two rows' outputs would pass unseen.
LEARNS = dict(epochs=40, learning_rate=1e-2, batch_size=4)


def write_topic_rows(path: Path) -> Path:
    "Write the three-label corpus as JSONL (`text`, `label`) to `path`."
    import json
    path.write_text("".join(json.dumps({"text": t.format(w), "label": lab}) + "\n" for lab, t in TOPICS.items() for w in WORDS))
    return path


SECRETS_SCANNED = {"finished run": 40, "failing run": 10}  # files a run folder holds at least, scanned for tokens (reliability.md)


def sealed_env(root: Path, **extra) -> dict:
    "An environment in which every place a run may write lies under `root`: HOME (its caches and configs), TMPDIR, the HF"
    " and W&B folders, matplotlib's and Jupyter's; so that a scan of `root` covers whatever the run wrote."
    home, tmp = root/"home", root/"tmp"
    for d in (home, tmp): d.mkdir(parents=True, exist_ok=True)
    drop = ("HF_HOME", "HF_HUB_CACHE", "HF_DATASETS_CACHE", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "WANDB_DIR",
            "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR", "MPLCONFIGDIR", "IPYTHONDIR", "JUPYTER_RUNTIME_DIR")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    return {**env, "HOME": str(home), "TMPDIR": str(tmp), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false", **extra}


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]


def docs_script():
    "scripts/docs.py, the docs site's builder and browser check, as a module."
    import importlib.util
    spec = importlib.util.spec_from_file_location("docs", ROOT/"scripts"/"docs.py")
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod


# --- what the command-line tests share ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def base(tmp_path_factory):
    "A tiny DeBERTa-v2 to fine-tune (the offline stand-in for a real base model), one per test module."
    from finetune_nb.testing import tiny_deberta
    return tiny_deberta(tmp_path_factory.mktemp("base")/"base", ["x", "y"])


def write(path: Path, rows) -> Path:
    "A JSONL file of `rows`: dicts as JSON, strings as they are (to write broken lines)."
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def quick(base, runs: Path) -> list[str]:
    "`finetune-nb` flags for a quick run on `base`: one epoch, one thread, no W&B, exact duplicates only, runs under `runs`."
    return ["--label-field", "label", "--base-model", str(base), "--epochs", "1", "--train-batch-size", "4", "--threads", "1",
            "--wandb-mode", "disabled", "--near-dup-threshold", "1.0", "--runs-dir", str(runs)]


def run(capsys, argv):
    "`finetune-nb argv` in this process: its exit code, stdout and stderr."
    from finetune_nb.orchestrate import main
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def nothing_written(runs: Path) -> bool:
    "No run folder (nor anything else) under `runs`."
    return not runs.exists() or not any(runs.iterdir())
