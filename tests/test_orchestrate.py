"""The whole pipeline through `finetune-nb` / `main()`: preflight, flags and config, exit codes, run folder, no token leaks.

Unit examples live in nbs/04a_plan, 04b_preflight and 04_orchestrate.ipynb; these run the command end to end on a tiny DeBERTa-v2.
"""
import importlib.util, json, os, subprocess, sys
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import pytest

from conftest import KERNELS, NBS, TOPICS, WORDS, assert_parameters_mirror, files_under, sealed_env, SECRETS_SCANNED
from finetune_nb import orchestrate, plan, preflight
from finetune_nb.clean import CleanSettings
from finetune_nb.evaluation import EvalSettings
from finetune_nb.orchestrate import OrchestrateSettings, main, make_plan
from finetune_nb.testing import HubStub, tiny_deberta, tiny_nli
from finetune_nb.train import TrainSettings

WRITE, READ, ORG = "hf_" + "W"*34, "hf_" + "R"*34, "hf_" + "O"*34
FAKE_WANDB = "f" * 40


def write_user_rows(path: Path, with_unlabelled: bool = False) -> Path:
    "The three-topic corpus with the user's own field names: nested text `body.text`, label `intent`."
    rows = [{"body": {"text": t.format(w), "lang": "en"}, "intent": lab} for lab, t in TOPICS.items() for w in WORDS]
    if with_unlabelled: rows.append({"body": {"text": "is my card on its way"}})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    "A user JSONL file, a tiny base model, and the flags of a quick run on them."
    d = tmp_path_factory.mktemp("orchestrate")
    data = write_user_rows(d/"tickets.jsonl")
    base = tiny_deberta(d/"base", ["x", "y"])
    quick = ["--text-field", "body.text", "--label-field", "intent", "--base-model", str(base), "--epochs", "1",
             "--train-batch-size", "4", "--val-size", "0.2", "--test-size", "0.25", "--near-dup-threshold", "1.0",
             "--threads", "1", "--wandb-mode", "offline"]
    return {"dir": d, "data": data, "base": base, "quick": quick, "nli": tiny_nli(d/"nli")}


@pytest.fixture(scope="module")
def finished(env):
    "One whole run on the user's file (engine python), shared by the tests that read its run folder."
    runs = env["dir"]/"runs"
    code = main([str(env["data"]), *env["quick"], "--runs-dir", str(runs), "--name", "tickets", "--zero-shot-model", str(env["nli"])])
    assert code == 0
    (run,) = runs.iterdir()
    return run


def run_main(capsys, argv) -> tuple[int, str, str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


# --- settings, flags and config ---------------------------------------------------------------------

def test_parameters_cell_mirrors_the_settings_dataclass():
    assert_parameters_mirror("04_orchestrate.ipynb", OrchestrateSettings)


def test_every_step_setting_is_mapped_from_its_own_setting(env, tmp_path):
    "Each field of each step's settings comes from the orchestrator setting of that meaning (distinct values catch swaps)."
    o = OrchestrateSettings(
        dataset=str(env["data"]), text_field="body.text", label_field="intent", dataset_target=str(tmp_path/"d"),
        overwrite=True, private=True, seed=7, test_size=0.3, near_dup_threshold=0.9, noise="majority",
        labels_include=["card", "pin"], labels_exclude=["loan"], min_per_label=3, max_per_label=50,
        reference_test=str(env["data"]), base_model="hf://acme/base", base_revision="v1", model_target=str(tmp_path/"m"),
        checkpoint_dir=str(tmp_path/"c"), epochs=3, max_length=128, train_batch_size=8, gradient_accumulation=2,
        learning_rate=2e-5, warmup=0.2, val_size=0.15, class_weights="balanced", early_stopping_patience=4, eval_steps=10,
        temperature_scaling=True, label_issue_folds=3, max_train_samples=100, long_texts="head-tail", stride=9, max_chunks=7, pool="max",
        wandb_project="p", wandb_mode="disabled", resume=True, threads=5, split="train",
        eval_batch_size=24, top_k=2, max_eval_samples=6, zero_shot_model="nli", baseline=False, quantize=True, precision="fp32", runtime="onnx",
        predictions=str(tmp_path/"p.jsonl"), license="cc-by-4.0", language=["en"])
    plan = make_plan(o, tmp_path/"run")
    assert not plan.errors and list(plan.steps) == ["clean", "train", "eval"]
    shared = dict(overwrite=True, private=True, seed=7, threads=5, wandb_project="p", wandb_mode="disabled", wandb_group="run")
    want = {
        "clean": dict(input_path=str(env["data"]), text_field="body.text", label_field="intent", target=str(tmp_path/"d"),
                      test_size=0.3, near_dup_threshold=0.9, noise="majority", labels_include=["card", "pin"],
                      labels_exclude=["loan"], min_per_label=3, max_per_label=50, reference_test=str(env["data"]),
                      license="cc-by-4.0", language=["en"]),
        "train": dict(dataset=str(tmp_path/"d"), base_model="hf://acme/base", revision="v1", target=str(tmp_path/"m"),
                      output_dir=str(tmp_path/"c"), epochs=3, max_length=128, batch_size=8, gradient_accumulation=2,
                      learning_rate=2e-5, warmup=0.2, val_size=0.15, class_weights="balanced", early_stopping_patience=4,
                      temperature_scaling=True, label_issue_folds=3, eval_steps=10, max_train_samples=100, resume=True,
                      long_texts="head-tail", stride=9, max_chunks=7, pool="max", chunk_loss="chunk"),  # 'text' needs chunks: below
        "eval": dict(model=str(tmp_path/"m"), revision="", dataset=str(tmp_path/"d"), split="train", examples="",
                     text_field="body.text", label_field="intent", batch_size=24, top_k=2, max_samples=6,
                     output=str(tmp_path/"p.jsonl"), zero_shot_model="nli", baseline=False, quantize=True, precision="fp32", runtime="onnx",
                     long_texts="", pool="", max_chunks=-1),  # a model trained in the run: read as it was trained
    }
    for step, cls in (("clean", CleanSettings), ("train", TrainSettings), ("eval", EvalSettings)):
        names = {f.name for f in fields(cls)}
        expected = {**{k: v for k, v in shared.items() if k in names}, **want[step]}
        assert set(expected) == names, f"{step}: unmapped {names - set(expected)}"
        got = asdict(plan.steps[step])
        assert {k: got[k] for k in expected} == expected, step
    per_text = make_plan(OrchestrateSettings(dataset=str(env["data"]), chunk_loss="text"), tmp_path/"r3")
    assert (per_text.steps["train"].chunk_loss, per_text.steps["train"].long_texts) == ("text", "chunks")
    only_eval = make_plan(OrchestrateSettings(model="hf://acme/clf", model_revision="v2", examples=str(env["data"]), long_texts="truncate",
                                              pool="max", max_chunks=3), tmp_path/"r2")
    assert list(only_eval.steps) == ["eval"]
    e = only_eval.steps["eval"]
    assert (e.model, e.revision, e.examples, e.dataset) == ("hf://acme/clf", "v2", str(env["data"]), "")
    assert (e.long_texts, e.pool, e.max_chunks) == ("truncate", "max", 3)  # an existing model: read as told


@pytest.mark.parametrize("kw, steps", [
    (dict(), ["clean", "train", "eval"]),
    (dict(stop_after="clean"), ["clean"]),
    (dict(stop_after="train"), ["clean", "train"]),
    (dict(skip=["eval"]), ["clean", "train"]),
    (dict(dataset="{cleaned}"), ["train", "eval"]),
    (dict(dataset="{cleaned}", stop_after="clean"), []),
    (dict(dataset="hf://datasets/acme/data", stop_after="train"), ["train"]),
    (dict(model="{model}"), ["eval"]),
    (dict(model="{model}", stop_after="train"), []),
    (dict(model="{model}", dataset="{raw}"), ["clean", "eval"]),
    (dict(model="{model}", examples="{raw}"), ["eval"]),
    (dict(examples="{raw}"), ["clean", "train", "eval"]),
])
def test_which_steps_run(kw, steps, finished, env):
    paths = {"cleaned": str(finished/"dataset"), "model": str(finished/"model"), "raw": str(env["data"])}
    s = OrchestrateSettings(**{k: v.format(**paths) if isinstance(v, str) else v for k, v in kw.items()})
    assert plan.plan_steps(s) == steps


def test_help_lists_every_setting_by_step(capsys):
    code, out, _ = run_main(capsys, ["--help"])
    assert code == 0
    for section in ("input:", "step 1: clean:", "step 2: train:", "step 3: evaluate:", "exit codes: 0 done, 2"):
        assert section in out
    for f in fields(OrchestrateSettings):
        assert "--" + f.name.replace("_", "-") in out


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_flags_override_the_config_file(tmp_path, suffix):
    cfg = tmp_path/f"run{suffix}"
    values = {"dataset": "from-config.jsonl", "epochs": 3, "text-field": "body", "labels_exclude": ["spam"], "overwrite": True}
    cfg.write_text(json.dumps(values) if suffix == ".json" else "".join(f"{k}: {json.dumps(v)}\n" for k, v in values.items()))
    s = orchestrate.parse_settings(["--config", str(cfg), "--epochs", "1", "--no-overwrite", "--label-field", "intent"])
    assert (s.dataset, s.epochs, s.text_field, s.labels_exclude, s.overwrite, s.label_field) == (
        "from-config.jsonl", 1.0, "body", ["spam"], False, "intent")
    assert orchestrate.parse_settings(["given.jsonl", "--config", str(cfg)]).dataset == "given.jsonl"


def test_bad_config_is_exit_2_naming_file_and_keys(tmp_path, capsys):
    cfg = tmp_path/"run.yaml"
    cfg.write_text("epoch: 3\ntop_k: three\nskip: eval\n")
    code, _, err = run_main(capsys, ["--config", str(cfg)])
    assert code == 2
    assert str(cfg) in err and "unknown setting 'epoch' (did you mean 'epochs'?)" in err and "top_k must be an integer" in err
    cfg.write_text("- not\n- a mapping\n")
    assert run_main(capsys, ["--config", str(cfg)])[0] == 2


@pytest.mark.parametrize("argv, says", [
    (["--engine", "docker"], "engine must be one of python, papermill"),
    (["--skip", "tokenize"], "are not steps"),
    (["--epochs", "two"], "invalid float value"),
    (["--no-such-flag"], "unrecognized arguments"),
    (["--base-model", "hf_" + "Z"*34], "--base-model must not carry secrets"),
])
def test_bad_flags_are_exit_2(capsys, argv, says, tmp_path):
    code, out, err = run_main(capsys, [*argv, "--runs-dir", str(tmp_path)])
    assert code == 2 and says in err
    assert "Z"*34 not in out + err and not list(tmp_path.iterdir())


# --- preflight ------------------------------------------------------------------------------------

def test_dry_run_checks_and_prints_the_plan_without_writing(env, tmp_path, capsys):
    code, out, _ = run_main(capsys, [str(env["data"]), *env["quick"], "--runs-dir", str(tmp_path), "--dry-run"])
    assert code == 0
    assert out.startswith("preflight passed") and "clean: input_path=" in out and "train: dataset=" in out and "eval: model=" in out
    assert "note: W&B offline" in out and not list(tmp_path.iterdir())


@pytest.fixture
def hub(no_secrets, monkeypatch, tmp_path):
    "The loopback Hub: `ada` may write (and belongs to org `acme-org` with ORG), `bob` may only read."
    monkeypatch.chdir(tmp_path)
    with HubStub({WRITE: ("ada", "write"), READ: ("bob", "read"), ORG: ("cy", "write", ["acme-org"])}) as stub: yield stub


def _full_disk(monkeypatch): monkeypatch.setattr(preflight, "free_bytes", lambda path: 1024)


def _no_onnxruntime(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))


def _token(value):
    return lambda mp: mp.setenv("HF_TOKEN", value)


# name -> (extra flags, set-up, what the one problem says); each runs alone against a clean slate
PROBLEMS = {
    "input missing": (["--dataset", "{tmp}/nope.jsonl"], None, "nope.jsonl: no such file or folder"),
    "field absent": (["--label-field", "label_name"], None, "--label-field 'label_name' is in none of its 36 JSON objects; fields present: body, body.text, body.lang, intent"),
    "require gpu": (["--require-gpu"], None, "--require-gpu: torch"),
    "no hf token": (["--model-target", "hf://ada/clf"], None, "publishing to the Hub needs a token with write access"),
    "invalid hf token": (["--model-target", "hf://ada/clf"], _token("hf_" + "X"*34), "token in force is not valid"),
    "read-only token": (["--dataset-target", "hf://datasets/bob/data"], _token(READ), "the token of bob is read-only"),
    "foreign namespace": (["--model-target", "hf://acme-org/clf"], _token(WRITE), "ada cannot write to 'acme-org'"),
    "wandb key": (["--wandb-mode", "online"], None, "--wandb-mode online needs a W&B API key"),
    "local target full": (["--model-target", "{tmp}/full"], lambda mp: None, "--model-target: target {tmp}/full exists and is not empty"),
    "disk": ([], _full_disk, "disk: checkpoints need about"),
    "skip train, no model": (["--skip", "train"], None, "--skip train needs a --model to evaluate"),
    "unknown split": (["--split", "validation"], None, "--split 'validation': a cleaned dataset has the splits train and test"),
    "no base model": (["--base-model", "{tmp}/nothing-here"], None, "--base-model {tmp}/nothing-here: no model folder"),
    "hub base model offline": (["--base-model", "acme/never-downloaded"], lambda mp: mp.setattr(preflight, "_hub_offline", lambda: True),
                               "acme/never-downloaded: the Hub is offline (HF_HUB_OFFLINE) and the model is not in the local cache"),
    "checkpoints left": (["--checkpoint-dir", "{tmp}/ck"], lambda mp: None, "--checkpoint-dir {tmp}/ck holds checkpoints; pass --resume"),
    "onnx runtime missing": (["--runtime", "onnx"], _no_onnxruntime, "--runtime onnx needs onnxruntime: pip install 'finetune-nb[onnx]'"),
}


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_each_preflight_problem_alone_is_exit_2_before_any_work(name, env, hub, tmp_path, capsys, monkeypatch):
    import torch
    if name == "require gpu" and torch.cuda.is_available(): pytest.skip("a GPU is present")
    flags, setup, says = PROBLEMS[name]
    (tmp_path/"full").mkdir(); (tmp_path/"full"/"old.bin").write_text("x")
    (tmp_path/"ck"/"checkpoint-8").mkdir(parents=True)
    if setup: setup(monkeypatch)
    monkeypatch.setattr("transformers.Trainer.train", lambda *a, **k: pytest.fail("training started"))
    data = [] if "--dataset" in flags else [str(env["data"])]
    argv = [*data, *env["quick"], "--runs-dir", str(tmp_path/"runs"), *[f.format(tmp=tmp_path) for f in flags]]
    code, out, err = run_main(capsys, argv)
    assert code == 2, err
    assert "preflight found 1 problem;" in err and says.format(tmp=tmp_path) in err
    assert not (tmp_path/"runs").exists() and not hub.repos


@pytest.mark.parametrize("argv, says", [
    (["--dataset", "hf://ada/data"], "--dataset: hf://ada/data is a model repo"),
    (["--model-target", "hf://ada/m@"], "--model-target: hf://ada/m@: empty revision"),
    (["--resume"], "--resume needs the run to continue: its folder (runs/<time>-<name>) in place of the dataset, or the --checkpoint-dir"),
])
def test_malformed_settings_are_exit_2(argv, says, tmp_path, capsys):
    code, _, err = run_main(capsys, [*argv, "--runs-dir", str(tmp_path)])
    assert code == 2 and says in err and not list(tmp_path.iterdir())


def test_a_model_alone_is_evaluated_on_its_own_test_split_if_it_names_one(finished, tmp_path, capsys):
    code, out, err = run_main(capsys, ["--model", str(finished/"model"), "--runs-dir", str(tmp_path/"a"), "--dry-run"])
    assert code == 0 and "eval: model=" in out and "clean:" not in out
    bare = tmp_path/"bare"
    bare.mkdir(); (bare/"config.json").write_text("{}")
    code, _, err = run_main(capsys, ["--model", str(bare), "--runs-dir", str(tmp_path/"b"), "--dry-run"])
    assert code == 2 and "no train_metrics.json naming the data" in err
    code, _, err = run_main(capsys, ["--model", str(finished/"model"), "--examples", str(finished/"x.jsonl"),
                                     "--dataset", str(finished/"dataset"), "--runs-dir", str(tmp_path/"c")])
    assert code == 2 and f"--dataset {finished/'dataset'} would not be used: with --model and --examples the run only evaluates" in err


@pytest.mark.parametrize("interpreter", ["/bin/true", "base"])
def test_a_python3_kernel_of_another_interpreter_is_a_preflight_problem(interpreter, env, tmp_path, capsys, monkeypatch):
    "engine papermill: a `python3` kernelspec (earlier on JUPYTER_PATH) that starts another Python is caught before any work."
    if interpreter == "base":  # the interpreter the venv links to: the same binary, without this package
        interpreter = str(Path(sys.executable).resolve())
        if interpreter == sys.executable or Path(sys.prefix).resolve() == Path(sys.base_prefix).resolve(): pytest.skip("not in a venv")
    spec = tmp_path/"jupyter"/"kernels"/"python3"
    spec.mkdir(parents=True)
    (spec/"kernel.json").write_text(json.dumps({"argv": [interpreter, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                                                "display_name": "Python 3 (system)", "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path/"jupyter"))
    argv = [str(env["data"]), *env["quick"], "--runs-dir", str(tmp_path/"runs"), "--engine", "papermill", "--dry-run"]
    code, _, err = run_main(capsys, argv)
    assert code == 2 and f"the Jupyter kernel 'python3' starts {interpreter}, not this environment's" in err
    monkeypatch.setenv("JUPYTER_PATH", str(KERNELS))  # this environment's python3 kernel (conftest)
    assert run_main(capsys, argv)[0] == 0


def test_artefact_folders_must_not_overlap(env, tmp_path, capsys):
    code, _, err = run_main(capsys, [str(env["data"]), *env["quick"], "--runs-dir", str(tmp_path/"runs"), "--dry-run",
                                     "--dataset-target", str(tmp_path/"out"), "--model-target", str(tmp_path/"out")])
    assert code == 2 and f"--dataset-target {tmp_path/'out'} and --model-target {tmp_path/'out'} overlap" in err
    code, _, err = run_main(capsys, [str(env["data"]), *env["quick"], "--runs-dir", str(tmp_path/"runs"), "--dry-run",
                                     "--model-target", str(tmp_path/"m"), "--checkpoint-dir", str(tmp_path/"m"/"ck")])
    assert code == 2 and "--model-target" in err and "--checkpoint-dir" in err and "overlap" in err


def test_list_flags_take_one_value_each_and_leave_the_dataset_alone():
    s = orchestrate.parse_settings(["--labels-exclude", "spam", "t.jsonl", "--labels-exclude", "ads, promo", "--skip", "eval"])
    assert (s.dataset, s.labels_exclude, s.skip) == ("t.jsonl", ["spam", "ads, promo"], ["eval"])


def test_the_summary_shows_only_what_this_run_produced(env, tmp_path):
    "A failed run does not show a Hub model it never published, nor metrics an earlier run left beside --predictions."
    pred = tmp_path/"old"/"predictions.jsonl"
    pred.parent.mkdir()
    pred.write_text("{}\n")
    (pred.parent/"metrics.json").write_text(json.dumps({"rows": 9, "labelled": 9, "fine_tuned": {"top1_accuracy": 0.99}}))
    s = OrchestrateSettings(dataset=str(env["data"]), text_field="body.text", label_field="intent", model_target="hf://acme/clf",
                            predictions=str(pred))
    plan = make_plan(s, tmp_path/"run")
    record = {"name": "run", "run_dir": str(tmp_path/"run"), "status": "failed", "error": "step train failed: boom",
              "steps": {"clean": {"status": "done"}, "train": {"status": "failed"}, "eval": {"status": "pending"}}}
    orchestrate.collect(record, plan)
    assert "model" not in record["artefacts"] and "predictions" not in record["artefacts"] and "test" not in record["results"]
    text = orchestrate.summary(record)
    assert "hf://acme/clf" not in text and "0.990" not in text and "**Error**: step train failed: boom" in text


def test_hub_targets_pass_with_a_write_token_for_the_namespace(env, hub, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", ORG)
    code, out, err = run_main(capsys, [str(env["data"]), *env["quick"], "--runs-dir", str(tmp_path), "--dry-run",
                                       "--dataset-target", "hf://datasets/cy/data", "--model-target", "hf://acme-org/clf"])
    assert code == 0, err
    assert ("GET", "/api/whoami-v2") in hub.requests and ORG not in out + err


def test_existing_hub_repo_needs_overwrite(env, hub, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", WRITE)
    hub.add_repo("model", "ada/clf", {"model.safetensors": b"x"})
    argv = [str(env["data"]), *env["quick"], "--runs-dir", str(tmp_path), "--dry-run", "--model-target", "hf://ada/clf"]
    code, _, err = run_main(capsys, argv)
    assert code == 2 and "hf://ada/clf already holds 1 files" in err
    assert run_main(capsys, [*argv, "--overwrite"])[0] == 0


def test_several_problems_are_reported_together(env, no_secrets, tmp_path, capsys, monkeypatch):
    _full_disk(monkeypatch)
    argv = [str(env["data"]), *env["quick"], "--runs-dir", str(tmp_path/"runs"), "--label-field", "label_name",
            "--wandb-mode", "online", "--reference-test", str(tmp_path/"ref.jsonl"), "--epochs", "0"]
    code, _, err = run_main(capsys, argv)
    assert code == 2
    assert "preflight found 5 problems" in err
    for says in ("train settings: --epochs must be > 0", "--label-field 'label_name' is in none of its", "ref.jsonl: no such file",
                 "needs a W&B API key", "disk: checkpoints need about"):
        assert says in err
    assert not (tmp_path/"runs").exists()


# --- runs -----------------------------------------------------------------------------------------

def test_a_run_on_the_users_own_jsonl_fills_its_run_folder(finished, env):
    run = finished
    assert run.name.endswith("-tickets")
    record = json.loads((run/"run.json").read_text())
    assert record["status"] == "done" and list(record["steps"]) == ["clean", "train", "eval"]
    assert all(s["status"] == "done" and s["seconds"] >= 0 for s in record["steps"].values())
    assert record["settings"]["text_field"] == "body.text" and record["versions"]["transformers"]
    assert record["git"] is None or len(record["git"]["commit"]) == 40
    assert record["resolved"]["base_model"]["loaded_from"] == str(env["base"])
    data = record["results"]["data"]
    assert data["lines"] == 36 == data["splits"]["train"] + data["splits"]["test"] + sum(data["dropped"].values())
    assert {"accuracy", "macro_f1"} <= set(record["results"]["train"]["validation"])
    test = record["results"]["test"]
    assert test["rows"] == data["splits"]["test"] and {"top1_accuracy", "top2_accuracy", "top3_accuracy"} <= set(test["fine_tuned"])
    preds = (run/"eval"/"predictions.jsonl").read_text().splitlines()
    assert len(preds) == data["splits"]["test"]
    assert len(list((run/"dataset"/"data").glob("train-*.parquet"))) == 1
    for p in ("model/model.safetensors", "model/train_metrics.json", "run.log", "summary.md"):
        assert (run/p).is_file(), p
    summary = (run/"summary.md").read_text()
    assert "| test (fine-tuned) |" in summary and "| validation |" in summary and "wandb sync " in summary
    assert "| zero-shot baseline |" in summary and "top1_accuracy" in test["zero_shot"]
    assert f"**Learning curves**: `{run/'model'/'learning_curves.png'}`." in summary
    diagram = run/"eval"/"predictions.reliability.png"
    assert f"expected calibration error {test['fine_tuned']['ece']:.3f} (reliability diagram: `{diagram}`)" in summary
    assert diagram.read_bytes()[:4] == b"\x89PNG"
    for picture in (run/"dataset"/"class_balance.png", run/"eval"/"predictions.confusion.png"):  # every plot, whatever the engine
        assert picture.read_bytes()[:4] == b"\x89PNG" and f"`{picture}`" in summary, picture
    issues = (run/"eval"/"label_issues.jsonl").read_text().splitlines()
    assert f"**Label issues**: {len(issues)} of {test['rows']} labelled test rows" in summary
    assert record["results"]["label_issues"] == {"rows": len(issues), "of": test["rows"]}
    assert [w for w in record["artefacts"]["wandb"] if "offline" in w]
    assert "step train" in (run/"run.log").read_text()


def test_examples_with_a_model_evaluate_only(finished, env, tmp_path, capsys):
    examples = write_user_rows(tmp_path/"new.jsonl", with_unlabelled=True)
    code, out, err = run_main(capsys, ["--model", str(finished/"model"), "--examples", str(examples), "--text-field", "body.text",
                                       "--label-field", "intent", "--runs-dir", str(tmp_path/"runs"), "--wandb-mode", "disabled"])
    assert code == 0, err
    (run,) = (tmp_path/"runs").iterdir()
    record = json.loads((run/"run.json").read_text())
    assert list(record["steps"]) == ["eval"] and not (run/"dataset").exists() and not (run/"model").exists()
    assert len((run/"eval"/"predictions.jsonl").read_text().splitlines()) == 37
    assert record["results"]["test"]["unlabelled"] == 1 and "1 unlabelled examples" in out


@pytest.mark.parametrize("rows", ["no label field", "every label empty"])
def test_examples_without_labels_are_predicted_under_the_command_line_names(finished, tmp_path, capsys, rows):
    "A file none of whose lines has a label (no field, or all empty) is predicted without flags, under --label-field too."
    lines = [{"body": {"text": "is my card on its way"}}, {"body": {"text": "change my pin"}}]
    if rows == "every label empty": lines = [{**r, "intent": ""} for r in lines]
    examples = tmp_path/"new.jsonl"
    examples.write_text("".join(json.dumps(r) + "\n" for r in lines))
    code, out, err = run_main(capsys, ["--model", str(finished/"model"), "--examples", str(examples), "--text-field", "body.text",
                                       "--label-field", "intent", "--runs-dir", str(tmp_path/"runs"), "--wandb-mode", "disabled"])
    assert code == 0, err
    (run,) = (tmp_path/"runs").iterdir()
    records = [json.loads(l) for l in (run/"eval"/"predictions.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(r["label"] is None and "correct@1" not in r for r in records)
    assert "2 unlabelled examples" in out and "none of its" not in err


def test_a_failure_during_the_work_is_exit_1_and_recorded(env, tmp_path, capsys, monkeypatch):
    def boom(*a, **k): raise RuntimeError("the GPU caught fire")
    monkeypatch.setattr("transformers.Trainer.train", boom)
    code, _, err = run_main(capsys, [str(env["data"]), *env["quick"], "--runs-dir", str(tmp_path), "--wandb-mode", "disabled"])
    assert code == 1 and "step train failed: RuntimeError: the GPU caught fire" in err
    (run,) = tmp_path.iterdir()
    assert str(run) in err
    record = json.loads((run/"run.json").read_text())
    assert record["status"] == "failed" and record["steps"]["clean"]["status"] == "done" and record["steps"]["train"]["status"] == "failed"
    assert record["steps"]["eval"]["status"] == "pending" and "caught fire" in record["error"]
    assert "**Error**" in (run/"summary.md").read_text()


@pytest.mark.slow
def test_no_token_reaches_any_file_of_a_notebook_run(env, tmp_path):
    "With fake tokens in force, a whole run through the step notebooks writes neither token anywhere it writes: the run"
    " folder, the working directory, TMPDIR, HOME (the HF cache, W&B's and matplotlib's folders), nor the console."
    work = tmp_path/"work"; work.mkdir()
    res = subprocess.run([str(Path(sys.executable).parent/"finetune-nb"), str(env["data"]), *env["quick"], "--runs-dir",
                          str(work/"runs"), "--engine", "papermill"], capture_output=True, text=True, cwd=work, timeout=900,
                         env=sealed_env(tmp_path, HF_TOKEN=WRITE, WANDB_API_KEY=FAKE_WANDB))
    assert res.returncode == 0, res.stderr[-3000:]
    (run,) = (work/"runs").iterdir()
    for nb in ("01_clean.ipynb", "02_train.ipynb", "03_eval.ipynb"): assert (run/nb).is_file(), nb
    files = files_under(tmp_path)
    in_run = [p for p in files if run in p.parents]
    assert len(in_run) >= SECRETS_SCANNED["finished run"] and any("offline-run-" in str(p) for p in in_run)  # W&B's files too
    print(f"secrets: {len(files)} files scanned ({len(in_run)} in the run folder)")
    leaks = [str(p) for p in files if WRITE.encode() in p.read_bytes() or FAKE_WANDB.encode() in p.read_bytes()]
    assert leaks == [] and WRITE not in res.stdout + res.stderr and FAKE_WANDB not in res.stdout + res.stderr


def test_module_entry_point_for_accelerate_launch(env, tmp_path):
    "`python -m finetune_nb.orchestrate` (what `accelerate launch -m` runs) is the same command."
    res = subprocess.run([sys.executable, "-m", "finetune_nb.orchestrate", str(env["data"]), *env["quick"], "--runs-dir",
                          str(tmp_path), "--dry-run"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("preflight passed")


@pytest.mark.slow
def test_two_processes_train_and_predict_together_and_only_the_main_one_cleans_and_measures(env, tmp_path):
    "`torchrun` (what `accelerate launch` starts) with 2 CPU processes: one run folder, DDP training, prediction shared, one of everything else."
    cmd = [str(Path(sys.executable).parent/"torchrun"), "--standalone", "--nproc_per_node", "2", "-m", "finetune_nb.orchestrate",
           str(env["data"]), *env["quick"], "--runs-dir", str(tmp_path), "--name", "ddp"]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=600,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir() and p.name.endswith("-ddp")]
    record = json.loads((run/"run.json").read_text())
    assert record["status"] == "done" and record["processes"] == 2
    log = (run/"run.log").read_text()
    assert log.count("step clean") == 1 and log.count("step eval") == 1
    rows = record["results"]["train"]["rows"]["train"]
    steps = [h["step"] for h in json.loads((run/"model"/"train_metrics.json").read_text())["log_history"] if "step" in h]
    assert max(steps) == -(-rows // (4*2))  # each optimiser step took a batch of 4 on each of the 2 processes
    assert len([w for w in record["artefacts"]["wandb"] if "offline" in w]) == 2  # one train run, one eval run
    assert res.stdout.count("## finetune_nb run") == 1
    records = [json.loads(l) for l in Path(record["artefacts"]["predictions"]).read_text().splitlines()]
    metrics = json.loads((run/"eval"/"metrics.json").read_text())
    ids = [r["id"] for r in records]
    assert ids == sorted(set(ids)) and len(ids) == metrics["rows"] == record["results"]["data"]["splits"]["test"]  # every test row once, in order
    assert metrics["throughput"]["processes"] == 2 and metrics["throughput"]["texts"] == len(ids)  # the two processes' parts, merged
    assert not list((run/"eval").glob("*.part*"))


@pytest.mark.slow
def test_when_cleaning_fails_on_the_main_process_the_others_stop_too(tmp_path):
    "No process waits forever for data that never comes: every one exits, and run.json says the clean step failed."
    lonely = tmp_path/"lonely.jsonl"  # every text twice, with two labels: nothing is left to split, which only the cleaning finds out
    lonely.write_text("".join(json.dumps({"text": f"text about {w}", "label": lab}) + "\n"
                              for w in ["apple", "pear", "fig", "kiwi"] for lab in ("a", "b")))
    cmd = [str(Path(sys.executable).parent/"torchrun"), "--standalone", "--nproc_per_node", "2", "-m", "finetune_nb.orchestrate",
           str(lonely), "--label-field", "label", "--runs-dir", str(tmp_path/"runs"), "--wandb-mode", "disabled"]
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode != 0
    assert "step clean failed: CleanError: no rows left to split" in res.stderr
    assert res.stderr.count("step clean failed") == 1  # said once: the other process stopped on the broadcast failure, quietly
    (run,) = (tmp_path/"runs").iterdir()
    record = json.loads((run/"run.json").read_text())
    assert record["status"] == "failed" and record["steps"]["clean"]["status"] == "failed"


@pytest.mark.slow
def test_the_notebook_runs_the_pipeline_on_the_users_own_jsonl(env, tmp_path):
    "papermill nbs/04_orchestrate.ipynb with the user's file and field names: the same run, as a notebook."
    import papermill as pm
    out = tmp_path/"tickets.ipynb"
    pm.execute_notebook(str(NBS/"04_orchestrate.ipynb"), str(out), cwd=str(NBS), kernel_name="python3", progress_bar=False,
                        parameters=dict(dataset=str(env["data"]), text_field="body.text", label_field="intent",
                                        base_model=str(env["base"]), epochs=1.0, train_batch_size=4, val_size=0.2,
                                        test_size=0.25, near_dup_threshold=1.0, threads=1, runs_dir=str(tmp_path/"runs"),
                                        name="nb"))
    (run,) = (tmp_path/"runs").iterdir()
    assert run.name.endswith("-nb") and json.loads((run/"run.json").read_text())["status"] == "done"
    text = out.read_text()
    assert "| test (fine-tuned) |" in text and "image/png" in text


@pytest.mark.slow
def test_the_command_runs_on_the_embedded_defaults(tmp_path, capsys):
    "`finetune-nb` with no arguments: the bundled sample, the offline MiniLM, local folders, W&B offline."
    code, out, err = run_main(capsys, ["--runs-dir", str(tmp_path), "--threads", "2"])
    assert code == 0, err
    (run,) = tmp_path.iterdir()
    record = json.loads((run/"run.json").read_text())
    assert run.name.endswith("-banking77_sample") and record["results"]["data"]["lines"] == 380
    assert record["results"]["test"]["fine_tuned"]["top3_accuracy"] > 0.5  # 8 intents: chance is 3/8
    assert "| near_duplicate |" in out and "wandb sync" in out


@pytest.mark.slow
def test_a_two_label_data_set_runs_through_the_step_notebooks(env, tmp_path, capfd):
    "A binary data set keeps top-2 at most: every notebook cell (the worst-examples table too) copes with no correct@3."
    data = tmp_path/"binary.jsonl"
    data.write_text("".join(json.dumps({"body": {"text": TOPICS[lab].format(w)}, "intent": lab}) + "\n"
                            for lab in ("card", "pin") for w in WORDS))
    code, out, err = run_main(capfd, [str(data), *env["quick"], "--runs-dir", str(tmp_path/"runs"), "--engine", "papermill"])
    assert code == 0, err
    (run,) = (tmp_path/"runs").iterdir()
    log = (run/"run.log").read_text()  # the papermill engine is not silent: each step's own log lines, as they come
    for said in ("train 18, test 6, dropped 0", "best checkpoint", "rows: top-1"): assert said in log and said in err
    assert "running over TCP" not in err
    metrics = json.loads((run/"eval"/"metrics.json").read_text())["fine_tuned"]
    assert {"top1_accuracy", "top2_accuracy"} <= set(metrics) and "top3_accuracy" not in metrics
    import nbformat
    cells = nbformat.read(run/"03_eval.ipynb", as_version=4).cells
    (worst,) = [c for c in cells if "worst_examples(result.records)" in c.source and "def " not in c.source]
    assert any("text/html" in o.get("data", {}) for o in worst.outputs)  # the table was shown, not an error


@pytest.mark.slow
def test_a_150_label_data_set_runs_through_the_step_notebooks(env, tmp_path, capfd):
    "Many labels (banking77 has 77; this has 150): the split, the label maps, top-3, the per-class report and the plots cope."
    import random
    rng, vocab = random.Random(0), [f"{a}{b}" for a in WORDS for b in WORDS]
    rows = [{"body": {"text": f"request {lab} " + " ".join(rng.sample(vocab, 4))}, "intent": f"intent_{lab:03d}"}
            for lab in range(150) for _ in range(4)]
    data = tmp_path/"many.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, err = run_main(capfd, [str(data), *env["quick"], "--runs-dir", str(tmp_path/"runs"), "--engine", "papermill",
                                      "--test-size", "0.25", "--val-size", "0.34"])
    assert code == 0, err[-3000:]
    (run,) = (tmp_path/"runs").iterdir()
    record = json.loads((run/"run.json").read_text())
    assert record["results"]["data"]["labels"]["read"] == 150 and record["results"]["data"]["labels"]["test"] == 150
    info = json.loads((run/"model"/"train_metrics.json").read_text())
    assert len(info["labels"]) == 150 and info["labels"] == sorted(info["labels"])
    m = json.loads((run/"eval"/"metrics.json").read_text())
    metrics, recs = m["fine_tuned"], [json.loads(l) for l in (run/"eval"/"predictions.jsonl").read_text().splitlines()]
    assert {r["label"] for r in recs} == set(info["labels"]) and all(len(r["top_labels"]) == 3 for r in recs)
    for k in (1, 2, 3):  # top-k from the records, k labels each, over all 150
        assert metrics[f"top{k}_accuracy"] == pytest.approx(sum(r[f"correct@{k}"] for r in recs)/len(recs))
    assert set(metrics["per_class"]) >= set(info["labels"]) and len(metrics["confusion_matrix"]["matrix"]) == 150
    assert all(len(row) == 150 for row in metrics["confusion_matrix"]["matrix"]) and metrics["confusion_matrix"]["labels"] == info["labels"]
    from PIL import Image
    for png in (run/"dataset"/"class_balance.png", Path(m["confusion_matrix_png"]), Path(m["reliability_diagram"])):
        with Image.open(png) as im: assert im.size[0] > 300 and len(im.convert("L").getcolors(256) or range(257)) > 2, png  # drawn


@pytest.mark.parametrize("argv, says", [
    (["--train-batch-size", "0"], "train settings: --train-batch-size must be > 0, got 0"),
    (["--eval-batch-size", "0", "--max-eval-samples", "-1"], "eval settings: --eval-batch-size must be >= 1, got 0; --max-eval-samples must be >= 0, got -1"),
    (["--engine", "docker"], "invalid settings: --engine must be one of python, papermill, got 'docker'"),
    (["--labels-include", "a", "--labels-exclude", "a"], "clean settings: --labels-include and --labels-exclude both name ['a']"),
])
def test_settings_errors_name_the_flags(env, capsys, tmp_path, argv, says):
    "From the command line, a setting is named by its flag, also when a step's own settings (batch_size) refuse it."
    code, out, err = run_main(capsys, [str(env["data"]), *env["quick"], "--runs-dir", str(tmp_path), *argv])
    assert code == 2 and says in err, err
    assert not list(tmp_path.iterdir())


def test_preflight_names_the_flags_to_pass(env, capsys, tmp_path):
    (tmp_path/"ck"/"checkpoint-4").mkdir(parents=True)
    code, _, err = run_main(capsys, [str(env["data"]), *env["quick"], "--runs-dir", str(tmp_path/"runs"), "--checkpoint-dir", str(tmp_path/"ck")])
    assert code == 2 and f"--checkpoint-dir {tmp_path/'ck'} holds checkpoints; pass --resume to continue that run, or --overwrite" in err


@pytest.mark.slow
def test_papermill_names_the_parameters(env, tmp_path):
    "Under papermill, the same problems name the -p parameters: the step notebook's own, and the whole run's."
    import papermill as pm
    with pytest.raises(pm.PapermillExecutionError) as e:
        pm.execute_notebook(str(NBS/"02_train.ipynb"), str(tmp_path/"t.ipynb"), cwd=str(NBS), kernel_name="python3", progress_bar=False,
                            parameters=dict(dataset=str(tmp_path/"nowhere"), batch_size=0, epochs=0.0))
    assert "invalid train settings: -p epochs must be > 0, got 0.0; -p batch_size must be > 0, got 0" in e.value.evalue
    with pytest.raises(pm.PapermillExecutionError) as e:
        pm.execute_notebook(str(NBS/"04_orchestrate.ipynb"), str(tmp_path/"o.ipynb"), cwd=str(NBS), kernel_name="python3",
                            progress_bar=False, parameters=dict(dataset=str(env["data"]), text_field="body.text", label_field="intent",
                                                                train_batch_size=0, runs_dir=str(tmp_path/"runs")))
    assert "train settings: -p train_batch_size must be > 0, got 0" in e.value.evalue


@pytest.mark.slow
def test_processes_2_share_the_prediction_of_an_examples_file(finished, env, tmp_path):
    "`--processes 2` starts torchrun itself (2 CPU processes, gloo): each predicts every other part; one records file in input order, the figures of one process."
    model = json.loads((finished/"run.json").read_text())["artefacts"]["model"]["local"]
    rows = [json.loads(l) for l in env["data"].read_text().splitlines() if l.strip()]
    f = tmp_path/"many.jsonl"
    f.write_text("".join(json.dumps({**r, "body": {"text": f"{r['body']['text']} {i}"}}) + "\n"
                         for i in range(2500) for r in [rows[i % len(rows)]] if isinstance(r.get("body"), dict)))
    flags = ["--model", model, "--examples", str(f), "--text-field", "body.text", "--label-field", "intent", "--threads", "1",
             "--wandb-mode", "disabled", "--no-baseline", "--eval-batch-size", "16"]  # parts of 1,024 rows: three, two for the first process
    assert main([*flags, "--run-dir", str(tmp_path/"one")]) == 0
    assert main([*flags, "--run-dir", str(tmp_path/"two"), "--processes", "2"]) == 0
    recs = [[json.loads(l) for l in (tmp_path/k/"eval"/"predictions.jsonl").read_text().splitlines()] for k in ("one", "two")]
    assert len(recs[0]) > 2048 and [r["id"] for r in recs[1]] == [r["id"] for r in recs[0]]  # every row once, in input order
    assert [r["top_labels"] for r in recs[1]] == [r["top_labels"] for r in recs[0]]
    assert np.allclose([r["top_scores"] for r in recs[1]], [r["top_scores"] for r in recs[0]], atol=1e-5)
    m = [json.loads((tmp_path/k/"eval"/"metrics.json").read_text()) for k in ("one", "two")]
    assert m[1]["fine_tuned"]["confusion_matrix"] == m[0]["fine_tuned"]["confusion_matrix"] and m[1]["label_issues"]["of"] == m[0]["label_issues"]["of"]
    assert (m[0]["throughput"]["processes"], m[1]["throughput"]["processes"], m[1]["throughput"]["texts"]) == (1, 2, len(recs[0]))
    assert not list((tmp_path/"two"/"eval").glob("*.part*"))
