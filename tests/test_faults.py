"""Faults survived end to end, through the real command (`finetune-nb` as a process): a run killed while training,
evaluating or publishing is finished by one command on its folder, and a killed publish leaves the previous target whole."""
import json, os, random, shutil, signal, subprocess, sys, time
from pathlib import Path

import pytest

from conftest import SECRETS_SCANNED, TOPICS, WORDS, files_under, sealed_env
from finetune_nb.orchestrate import main
from finetune_nb.plan import run_status
from finetune_nb.train import last_checkpoint

FINETUNE_NB = str(Path(sys.executable).parent/"finetune-nb")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
pytestmark = pytest.mark.slow


def rows(n: int, seed: int = 0) -> list[dict]:
    "`n` distinct texts over the three topics, none a near duplicate of another at threshold 1.0."
    rng, vocab = random.Random(seed), [f"{a}{b}" for a in WORDS for b in WORDS]
    return [{"text": TOPICS[lab].format(" ".join(rng.sample(vocab, 3)) + f" {i}"), "label": lab}
            for i, lab in enumerate(rng.choice(list(TOPICS)) for _ in range(n))]


def write(path: Path, rs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rs), encoding="utf-8")
    return path


def quick(base, runs: Path) -> list[str]:
    return ["--label-field", "label", "--base-model", str(base), "--train-batch-size", "4", "--threads", "1",
            "--wandb-mode", "disabled", "--near-dup-threshold", "1.0", "--runs-dir", str(runs)]


def launch(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([FINETUNE_NB, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            start_new_session=True)


def kill_when(proc: subprocess.Popen, ready, timeout: float = 300, sig=signal.SIGKILL) -> object:
    "SIGKILL the process (and its children) as soon as `ready()` returns something; return that."
    end = time.time() + timeout
    while time.time() < end:
        if (got := ready()):
            os.killpg(proc.pid, sig)
            proc.wait(30)
            return got
        if proc.poll() is not None: pytest.fail(f"finished before the kill: {proc.stderr.read()[-2000:]}")
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail("never reached the point to kill at")


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _has_files(folder: Path) -> bool:
    try: return any(folder.iterdir())
    except FileNotFoundError: return False  # renamed into place meanwhile


def finish(run_dir: Path) -> dict:
    "The one command that continues a run; returns its run.json."
    res = subprocess.run([FINETUNE_NB, str(run_dir), "--resume"], capture_output=True, text=True, env=ENV, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads((run_dir/"run.json").read_text())


def test_a_run_killed_while_training_continues_from_its_checkpoint(base, tmp_path):
    data, runs = write(tmp_path/"t.jsonl", rows(60)), tmp_path/"runs"
    proc = launch([str(data), *quick(base, runs), "--epochs", "60", "--eval-steps", "4", "--name", "k"])
    ckpts = lambda: next(iter(runs.glob("*/checkpoints")), None)
    kill_when(proc, lambda: (c := ckpts()) and (last := last_checkpoint(c)) and int(last.rsplit("-", 1)[1]) >= 8)
    (run_dir,) = runs.iterdir()
    killed = json.loads((run_dir/"run.json").read_text())
    assert killed["status"] == "running" and run_status(killed) == "interrupted"  # its process is gone
    saved = int(last_checkpoint(run_dir/"checkpoints").rsplit("-", 1)[1])  # the newest whole checkpoint at the kill
    cleaned = (run_dir/"dataset"/"train.csv").stat().st_mtime_ns

    again = subprocess.run([FINETUNE_NB, str(run_dir)], capture_output=True, text=True, env=ENV, timeout=300)
    assert again.returncode == 2 and f"{run_dir} is a run folder (interrupted): pass --resume to continue it" in again.stderr

    record = finish(run_dir)
    info = json.loads((run_dir/"model"/"train_metrics.json").read_text())
    assert (info["started_at_step"], info["resumed_from"]) == (saved, f"checkpoint-{saved}")  # what the second process did
    assert info["settings"]["epochs"] == 60 and info["epochs_done"] == pytest.approx(60, abs=1)
    assert record["status"] == "done" and all(v["status"] == "done" for v in record["steps"].values())
    assert record["attempts"][0]["status"] == "interrupted" and record["settings"]["name"] == "k"
    assert (run_dir/"dataset"/"train.csv").stat().st_mtime_ns == cleaned  # the finished step was not run again
    assert record["results"]["test"]["fine_tuned"]["top1_accuracy"] is not None


def test_a_run_killed_while_evaluating_predicts_each_example_once(base, tmp_path):
    model_run = tmp_path/"m"
    assert main([str(write(tmp_path/"t.jsonl", rows(40))), *quick(base, model_run), "--epochs", "1", "--name", "m"]) == 0
    (model,) = [p/"model" for p in model_run.iterdir()]
    examples, runs = write(tmp_path/"ex.jsonl", rows(6000, seed=1)), tmp_path/"runs"
    proc = launch(["--model", str(model), "--examples", str(examples), "--label-field", "label", "--eval-batch-size", "1",
                   "--threads", "1", "--wandb-mode", "disabled", "--runs-dir", str(runs), "--name", "e"])
    preds = lambda: next(iter(runs.glob("*/eval/predictions.jsonl")), None)
    kill_when(proc, lambda: (p := preds()) and p.stat().st_size > 0)
    (run_dir,) = runs.iterdir()
    before = len(preds().read_text().splitlines())
    assert 0 < before < 6000
    record = finish(run_dir)
    ids = [json.loads(l)["id"] for l in preds().read_text().splitlines()]
    assert sorted(ids) == list(range(1, 6001))  # each example exactly once: kept, or predicted after the resume
    assert record["status"] == "done" and record["results"]["test"]["rows"] == 6000


KILL_AT = {  # a process that publishes, killed where damage is possible: SIGKILL from inside, at that very point
    "while staging": "real = C._replace_dir\ndef at(new, dest):\n    os.kill(os.getpid(), signal.SIGKILL)\nC._replace_dir = at",
    "between the renames": ("C._exchange = lambda a, b: False  # a file system with no atomic swap: two renames\n"
                            "real = os.rename\ndef rename(a, b):\n    real(a, b)\n"
                            "    if str(b).endswith('.old'): os.kill(os.getpid(), signal.SIGKILL)  # the target is gone now\n"
                            "os.rename = rename"),
}


@pytest.mark.parametrize("where", list(KILL_AT))
def test_a_publish_killed_midway_leaves_the_previous_dataset_and_resume_finishes(base, tmp_path, where):
    "Killed while the new dataset is staged, or between the two renames of a swap without renameat2: the previous version"
    " is whole (in place, or beside it to be put back), and `--resume` finishes the run with the new one."
    target, runs = tmp_path/"published", tmp_path/"runs"
    assert main([str(write(tmp_path/"small.jsonl", rows(40))), *quick(base, runs/"first"), "--stop-after", "clean",
                 "--dataset-target", str(target)]) == 0
    previous = snapshot(target)
    argv = [str(write(tmp_path/"other.jsonl", rows(60, seed=3))), *quick(base, runs/"second"), "--stop-after", "clean",
            "--dataset-target", str(target), "--overwrite"]
    script = f"import os, signal, sys\nimport finetune_nb.core as C\n{KILL_AT[where]}\nfrom finetune_nb.orchestrate import main\nsys.exit(main({argv!r}))"
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=ENV, timeout=600)
    assert res.returncode == -signal.SIGKILL, res.stderr[-2000:]
    (run_dir,) = (runs/"second").iterdir()
    assert run_status(json.loads((run_dir/"run.json").read_text())) == "interrupted"  # its process is gone
    if where == "while staging": assert snapshot(target) == previous  # the previous version, whole, in place
    else:
        assert not target.exists()  # the moment between the renames: no target, and the previous version beside it, whole
        (old,) = tmp_path.glob(".published.staging-*.old")
        assert snapshot(old) == previous
    assert all(p.name.startswith(".published.staging-") for p in tmp_path.iterdir() if p.name not in ("published", "runs", "small.jsonl", "other.jsonl"))
    record = finish(run_dir)  # the command the docs give
    assert record["status"] == "done" and record["steps"]["clean"]["status"] == "done"
    now = snapshot(target)
    assert now != previous and json.loads(now["stats.json"])["input"]["lines"] == 60  # the new dataset, whole
    assert not list(tmp_path.glob(".published.staging-*.old"))  # the previous version was put back, then replaced


def test_a_run_stopped_by_sigterm_says_interrupted_and_how_to_continue(base, tmp_path):
    "A scheduler's stop (SIGTERM) ends the run as Ctrl-C does: recorded, with the command that continues it."
    data, runs = write(tmp_path/"t.jsonl", rows(60)), tmp_path/"runs"
    proc = launch([str(data), *quick(base, runs), "--epochs", "60", "--eval-steps", "4"])
    kill_when(proc, lambda: (c := next(iter(runs.glob("*/checkpoints")), None)) and last_checkpoint(c), sig=signal.SIGTERM)
    (run_dir,) = runs.iterdir()
    record = json.loads((run_dir/"run.json").read_text())
    assert proc.returncode == 130 and record["status"] == "interrupted" and record["steps"]["train"]["status"] == "interrupted"
    assert f"finetune-nb {run_dir} --resume   # continue this run where it stopped" in (run_dir/"summary.md").read_text()
    saved = int(last_checkpoint(run_dir/"checkpoints").rsplit("-", 1)[1])
    record = finish(run_dir)  # that command, run: the run is done, training went on from the checkpoint
    info = json.loads((run_dir/"model"/"train_metrics.json").read_text())
    assert record["status"] == "done" and record["attempts"][0]["status"] == "interrupted"
    assert (info["started_at_step"], info["resumed_from"]) == (saved, f"checkpoint-{saved}")


def test_no_token_reaches_any_file_or_the_console_of_a_failing_notebook_run(base, tmp_path):
    "Fake tokens in force, a run through the step notebooks that fails while training (its base model's weights are cut"
    " off): neither token is in any file written (notebooks, run folder, W&B offline runs, logs) nor on the console."
    hf, wb = "hf_" + "Q"*34, "9a" * 20
    broken = tmp_path/"broken"
    shutil.copytree(base, broken)
    weights = broken/"model.safetensors"
    weights.write_bytes(weights.read_bytes()[:len(weights.read_bytes())//2])  # the header reads, the tensors do not
    data, runs = write(tmp_path/"t.jsonl", rows(40)), tmp_path/"work"/"runs"
    runs.parent.mkdir()
    res = subprocess.run([FINETUNE_NB, str(data), *quick(broken, runs), "--engine", "papermill", "--wandb-mode", "offline"],
                         capture_output=True, text=True, timeout=900, cwd=runs.parent,
                         env=sealed_env(tmp_path, HF_TOKEN=hf, WANDB_API_KEY=wb))  # HOME, TMPDIR, caches: all under tmp_path
    assert res.returncode == 1 and "step train failed" in res.stderr, res.stderr[-3000:]
    (run_dir,) = runs.iterdir()
    assert json.loads((run_dir/"run.json").read_text())["steps"]["train"]["status"] == "failed"
    files = files_under(tmp_path)
    assert len([p for p in files if run_dir in p.parents]) >= SECRETS_SCANNED["failing run"] and (run_dir/"02_train.ipynb").is_file()
    print(f"secrets: {len(files)} files of a failing papermill run scanned")
    leaks = [str(p) for p in files if hf.encode() in p.read_bytes() or wb.encode() in p.read_bytes()]
    assert not leaks and hf not in res.stdout + res.stderr and wb not in res.stdout + res.stderr
