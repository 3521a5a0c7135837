"""Training step tests on a tiny DeBERTa-v2 (unit examples live in nbs/02_train.ipynb)."""
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback, pipeline

from conftest import assert_parameters_mirror, write_topic_rows
from finetune_nb.clean import CleanSettings, clean, publish_dataset, run_clean
from finetune_nb.data import load_clean_dataset
from finetune_nb.testing import tiny_deberta
from finetune_nb.evaluation import EvalSettings, run_eval
from finetune_nb.train import TrainSettings, model_card, public_info, run_train



@pytest.fixture(scope="module")
def data(tmp_path_factory):
    "A cleaned dataset (3 labels x 12 rows) and a tiny DeBERTa base model, made once for the module."
    d = tmp_path_factory.mktemp("train")
    write_topic_rows(d/"raw.jsonl")
    _, pub = run_clean(CleanSettings(input_path=str(d/"raw.jsonl"), label_field="label", target=str(d/"data"),
                                     near_dup_threshold=1.0, test_size=0.25))
    return {"dataset": pub.location, "base": str(tiny_deberta(d/"base", ["x", "y"])), "dir": d}


def settings(data, tmp_path, **kw) -> TrainSettings:
    return TrainSettings(**{"dataset": data["dataset"], "base_model": data["base"], "target": str(tmp_path/"model"),
                            "epochs": 2, "batch_size": 4, "val_size": 0.2, "wandb_mode": "disabled", "threads": 1, **kw})


class Record(TrainerCallback):
    "Remembers what the Trainer did."
    def __init__(self): self.evals, self.begin_step, self.summaries = [], None, []
    def on_train_begin(self, args, state, control, **kw): self.begin_step = state.global_step
    def on_evaluate(self, args, state, control, metrics=None, **kw):
        import wandb
        self.evals.append((state.global_step, len(kw["eval_dataloader"].dataset), dict(metrics)))
        if wandb.run is not None: self.summaries.append(dict(wandb.run.summary))


def test_parameters_cell_mirrors_the_settings_dataclass():
    assert_parameters_mirror("02_train.ipynb", TrainSettings)


def test_publishes_a_model_that_reloads_with_its_label_names(data, tmp_path):
    res, pub = run_train(settings(data, tmp_path))
    folder = Path(pub.location)
    model, tok = AutoModelForSequenceClassification.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
    assert model.config.id2label == {0: "card", 1: "loan", 2: "pin"} and model.config.label2id["pin"] == 2
    out = pipeline("text-classification", model=model, tokenizer=tok, top_k=3, device="cpu")(["my card has not arrived"])[0]
    assert sorted(x["label"] for x in out) == ["card", "loan", "pin"]
    info = json.loads((folder/"train_metrics.json").read_text())
    assert set(info["validation"]) >= {"accuracy", "macro_f1", "micro_f1"} and info["versions"]["transformers"]
    assert info["base_model"]["loaded_from"] == data["base"] and info["log_history"]
    card = (folder/"README.md").read_text()
    assert card.startswith("---\n") and "pipeline_tag: text-classification" in card and "`loan`" in card
    assert f'pipeline("text-classification", model="{folder.resolve()}", top_k=3)' in card  # how to load this very model
    assert not (folder/"training_args.bin").exists()
    assert (folder/"learning_curves.png").read_bytes()[:4] == b"\x89PNG"  # drawn by the step, whatever runs it


def test_what_a_hub_repo_shows_names_no_local_path_and_the_right_base_model(data, tmp_path):
    "A Hub repo's card and train_metrics.json show local folders by name, claim no Hub base model for a local one, and point"
    " evaluation to no local dataset (asking for one instead)."
    res, pub = run_train(settings(data, tmp_path))
    shown = public_info({**res.info, "target": "hf://acme/clf"})
    assert shown["dataset"] is None and shown["dataset_name"] == "data"
    assert shown["base_model"]["hub_id"] is None and shown["base_model"]["name"] == shown["base_model"]["loaded_from"] == "base"
    assert str(data["dir"]) not in json.dumps(shown, default=str) and str(tmp_path) not in json.dumps(shown, default=str)
    card = model_card(shown)
    assert "base_model:" not in card.split("---")[1] and "on the dataset `data`" in card
    hub = {**shown, "base_model": {**shown["base_model"], "hub_id": "microsoft/deberta-v3-base"}}
    assert "base_model: microsoft/deberta-v3-base" in model_card(hub).split("---")[1]
    (Path(pub.location)/"train_metrics.json").write_text(json.dumps(shown, default=str))  # as a download of that repo would be
    with pytest.raises(ValueError, match=r"give dataset or examples: .* was trained on a local dataset \(data\)"):
        run_eval(EvalSettings(model=pub.location, wandb_mode="disabled", output=str(tmp_path/"p.jsonl")))


def test_model_selection_never_sees_the_test_split(data, tmp_path):
    rec = Record()
    res, _ = run_train(settings(data, tmp_path), callbacks=[rec])
    ds = load_clean_dataset(data["dataset"])
    train_ids, test_ids = set(ds["train"]["id"]), set(ds["test"]["id"])
    eval_ids, fit_ids = set(res.trainer.eval_dataset["id"]), set(res.trainer.train_dataset["id"])
    assert eval_ids <= train_ids and not eval_ids & test_ids and not eval_ids & fit_ids and not fit_ids & test_ids
    assert rec.evals and all(n == len(eval_ids) == res.info["rows"]["validation"] for _, n, _ in rec.evals)


def test_unseen_test_label_is_an_error_before_training(data, tmp_path, monkeypatch):
    res = clean(CleanSettings(input_path=str(data["dir"]/"raw.jsonl"), label_field="label", near_dup_threshold=1.0, test_size=0.25))
    res.test.loc[0, "label"] = "mortgage"
    bad = publish_dataset(res, tmp_path/"bad").location
    import transformers
    monkeypatch.setattr(transformers.Trainer, "train", lambda *a, **k: pytest.fail("training started"))
    with pytest.raises(ValueError, match=r"test labels not in the training split: \['mortgage'\]"):
        run_train(settings(data, tmp_path, dataset=bad))
    assert not (tmp_path/"checkpoints").exists() and not (tmp_path/"model").exists()


def test_truncation_is_counted(data, tmp_path):
    res, _ = run_train(settings(data, tmp_path, max_length=8, epochs=1, long_texts="truncate"))
    tok = AutoTokenizer.from_pretrained(data["base"])
    texts = res.trainer.train_dataset["input_ids"]
    assert res.info["max_length"] == 8 and all(len(x) <= 8 for x in texts)
    full = load_clean_dataset(data["dataset"])["train"].to_pandas().set_index("id")
    expect = sum(len(tok(full.loc[i, "text"])["input_ids"]) > 8 for i in res.trainer.train_dataset["id"])
    assert res.info["truncated"]["train"] == expect > 0


def test_the_three_metrics_reach_wandb(data, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_" + "S"*34)
    rec = Record()
    res, _ = run_train(settings(data, tmp_path, wandb_mode="offline", wandb_group="pipeline-1"), callbacks=[rec])
    assert rec.summaries, "no W&B run was active during evaluation"
    last = rec.summaries[-1]
    for k in ("eval/accuracy", "eval/macro_f1", "eval/micro_f1"):
        assert last[k] == pytest.approx(rec.evals[-1][2][k.replace("/", "_")]), k
    assert res.info["wandb"]["run_id"] and res.info["wandb"]["group"] == "pipeline-1"
    run_dir = Path(res.info["wandb"]["dir"])
    assert run_dir.exists() and "hf_" + "S"*34 not in "".join(p.read_text(errors="ignore") for p in run_dir.rglob("*")
                                                               if p.is_file() and p.stat().st_size < 5_000_000)


def interrupted(data, tmp_path, at_step: int) -> tuple[TrainSettings, Path]:
    "A run stopped (KeyboardInterrupt) right after saving the checkpoint of `at_step`; its settings and checkpoints folder."
    class Crash(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            if state.global_step >= at_step: raise KeyboardInterrupt("killed")
    out = tmp_path/"ckpt"
    s = settings(data, tmp_path, output_dir=str(out), eval_steps=2, epochs=2)
    with pytest.raises(KeyboardInterrupt): run_train(s, callbacks=[Crash()])
    return s, out


def test_resume_after_an_interrupted_run(data, tmp_path):
    s, out = interrupted(data, tmp_path, at_step=2)
    assert (out/"checkpoint-2").is_dir() and not (tmp_path/"model").exists()
    with pytest.raises(FileExistsError, match="resume=True"): run_train(s)
    rec = Record()
    res, pub = run_train(TrainSettings(**{**s.__dict__, "resume": True}), callbacks=[rec])
    assert rec.begin_step == 2 and res.trainer.state.global_step > 2 and Path(pub.location, "model.safetensors").exists()
    assert (res.info["started_at_step"], res.info["resumed_from"]) == (2, "checkpoint-2")  # what it did, recorded


def test_resume_skips_a_checkpoint_cut_off_mid_save(data, tmp_path):
    "A kill while the Trainer writes checkpoint-N leaves it without trainer_state.json: resume starts from the one before."
    s, out = interrupted(data, tmp_path, at_step=4)
    (out/"checkpoint-4"/"trainer_state.json").unlink()  # as if killed before the Trainer's last write
    res, _ = run_train(TrainSettings(**{**s.__dict__, "resume": True}))
    assert (res.info["started_at_step"], res.info["resumed_from"]) == (2, "checkpoint-2")


def test_a_full_disk_while_saving_a_checkpoint_says_where_and_resume_goes_on(data, tmp_path, monkeypatch):
    "The disk fills in the middle of the second checkpoint: its weights written, half its optimizer state, then ENOSPC."
    import errno
    real, calls = torch.save, []
    def filling(obj, f, *a, **k):  # what torch.save writes into a checkpoint folder: the optimizer's and scheduler's state
        calls.append(str(f))
        if sum(c.endswith("optimizer.pt") for c in calls) != 2 or not str(f).endswith("optimizer.pt"): return real(obj, f, *a, **k)
        real(obj, f, *a, **k)
        Path(f).write_bytes(Path(f).read_bytes()[:Path(f).stat().st_size//2])  # the bytes that fitted
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(torch, "save", filling)
    out = tmp_path/"ckpt"
    s = settings(data, tmp_path, output_dir=str(out), eval_steps=2, epochs=2)
    with pytest.raises(OSError, match=rf"{out}: could not write \(the disk is full\); the checkpoints saved before are kept: "
                                      "continue from them with resume=True; free space there"):
        run_train(s)
    cut = [p for p in out.iterdir() if p.is_dir() and not (p/"trainer_state.json").exists()]
    assert len(cut) == 1 and (cut[0]/"model.safetensors").exists()  # damage done: a checkpoint cut off mid-save, weights and all
    whole = [p.name for p in out.iterdir() if (p/"trainer_state.json").exists()]
    assert len(whole) == 1 and int(whole[0].split("-")[1]) < int(cut[0].name.split("-")[1])
    monkeypatch.setattr(torch, "save", real)
    res, pub = run_train(TrainSettings(**{**s.__dict__, "resume": True}))
    assert res.info["resumed_from"] == whole[0] and Path(pub.location, "model.safetensors").exists()  # the whole one, not the cut
    assert not cut[0].exists() or (cut[0]/"trainer_state.json").exists()  # the cut checkpoint was removed (or saved anew, whole)


def test_temperature_scaling_is_fitted_on_validation_and_folded_into_the_published_head(data, tmp_path):
    "The fitted temperature lowers the validation NLL (it minimises it, and T = 1 is a candidate); the published head is the"
    " best checkpoint's divided by T, so pipeline(), Trainer and evaluation all get the calibrated scores."
    from safetensors.torch import load_file
    res, pub = run_train(settings(data, tmp_path, temperature_scaling=True, epochs=3))
    t = res.info["temperature"]
    assert 0.05 <= t["value"] <= 20 and t["validation_rows"] == res.info["rows"]["validation"]
    assert t["after"]["nll"] <= t["before"]["nll"] + 1e-9
    best = load_file(str(Path(res.info["best_checkpoint"])/"model.safetensors"))
    published = load_file(str(Path(pub.location)/"model.safetensors"))
    head = [k for k in published if k.startswith("classifier.")]
    assert head and all(torch.allclose(published[k]*t["value"], best[k], atol=1e-5) for k in head)
    others = [k for k in published if not k.startswith("classifier.")]
    assert all(torch.equal(published[k], best[k]) for k in others if k in best)
    assert json.loads((Path(pub.location)/"config.json").read_text())["finetune_nb_temperature"] == pytest.approx(t["value"])
    assert run_train(settings(data, tmp_path/"off"))[0].info["temperature"] is None  # off by default


def test_class_weights_are_inverse_frequencies_and_the_loss_uses_them(data, tmp_path):
    "An imbalanced set (24/12/6 rows): the loss's weights are n/(k*count) of the rows trained on, and it is their weighted CE."
    from sklearn.utils.class_weight import compute_class_weight
    words = [f"{a}{b}" for a in ("al", "be", "ga", "de", "ep", "ze") for b in ("x", "y", "z", "w")]
    rows = [{"text": f"{topic} {w}", "label": lab} for lab, topic, n in (("card", "my card has not come", 24),
            ("pin", "how to change the pin", 12), ("loan", "can i borrow money", 6)) for w in words[:n]]
    (tmp_path/"r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    _, pub = run_clean(CleanSettings(input_path=str(tmp_path/"r.jsonl"), label_field="label", target=str(tmp_path/"d"),
                                     near_dup_threshold=1.0, test_size=0.25))
    res, _ = run_train(settings(data, tmp_path, dataset=pub.location, class_weights="balanced", epochs=1))
    fit = torch.tensor(res.trainer.train_dataset["labels"])
    want = torch.tensor(compute_class_weight("balanced", classes=torch.arange(3).numpy(), y=fit.numpy()), dtype=torch.float)
    assert len(set(want.tolist())) == 3  # imbalanced: three different weights, or the check below proves nothing
    logits, labels = torch.randn(8, 3), torch.tensor([0, 1, 2, 0, 0, 1, 2, 2])
    out = type("Out", (), {"logits": logits})()
    got = res.trainer.compute_loss_func(out, labels)
    assert torch.allclose(got, torch.nn.functional.cross_entropy(logits, labels, weight=want), atol=1e-6)
    assert not torch.allclose(got, torch.nn.functional.cross_entropy(logits, labels), atol=1e-3)  # not the unweighted loss
    plain, _ = run_train(settings(data, tmp_path, dataset=pub.location, target=str(tmp_path/"plain"), output_dir=str(tmp_path/"pc"), epochs=1))
    assert plain.trainer.compute_loss_func is None  # class_weights='none': the model's own loss


def test_early_stopping_stops_when_macro_f1_stops_improving(data, tmp_path):
    rec = Record()
    res, _ = run_train(settings(data, tmp_path, early_stopping_patience=1, eval_steps=1, epochs=5, learning_rate=1e-12),
                       callbacks=[rec])
    steps_per_epoch = -(-res.info["rows"]["train"] // 4)
    assert res.trainer.state.global_step < 5*steps_per_epoch  # stopped: a frozen model never improves its macro-F1
    assert res.trainer.state.global_step == 2  # the first evaluation, then one without improvement: patience 1 ends it


def test_no_validation_rows_is_a_clear_error(data, tmp_path):
    rows = [{"text": f"{w} text about {lab}", "label": lab} for lab in ("a", "b", "c", "d") for w in ("one", "two")]
    (tmp_path/"r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    _, pub = run_clean(CleanSettings(input_path=str(tmp_path/"r.jsonl"), label_field="label", target=str(tmp_path/"d"),
                                     near_dup_threshold=1.0))
    with pytest.raises(ValueError, match="validation split is empty"): run_train(settings(data, tmp_path, dataset=pub.location))


@pytest.mark.slow
def test_a_production_papermill_run_skips_the_examples(data, tmp_path):
    "With parameters set, the notebook does the step, not its examples (02_train's trains a tiny model of its own)."
    import nbformat, papermill as pm
    from conftest import NBS
    out = tmp_path/"train.ipynb"
    pm.execute_notebook(str(NBS/"02_train.ipynb"), str(out), cwd=str(tmp_path), kernel_name="python3", progress_bar=False,
                        parameters=dict(dataset=data["dataset"], base_model=data["base"], target=str(tmp_path/"model"), epochs=1.0,
                                        batch_size=4, val_size=0.2, wandb_mode="disabled", threads=1))
    cells = nbformat.read(out, as_version=4).cells
    example = next(c for c in cells if "tiny_deberta(f\"{d}/base\"" in c.source)  # "A complete run on a tiny DeBERTa-v2"
    assert example.outputs == [] and example.execution_count is not None  # it ran as a no-op
    assert (tmp_path/"model"/"config.json").is_file()  # the step itself did run
    assert any(o.get("output_type") == "display_data" for c in cells for o in c.get("outputs", []))  # and its plots


def test_k_fold_label_issues_score_every_train_row_out_of_sample(data, tmp_path, monkeypatch):
    import numpy as np
    import finetune_nb.train as T
    from finetune_nb.data import label_issues
    seen = {}
    def recording(labels, n_labels, fit_predict, folds, seed):
        def fp(fit, held):
            assert not set(fit) & set(held)  # a row is never scored by a model that trained on it
            seen.setdefault("held", []).extend(held)
            return fit_predict(fit, held)
        seen["probs"] = out = real(labels, n_labels, fp, folds, seed)
        seen["labels"] = list(labels)
        return out
    real = T.out_of_fold_probs
    monkeypatch.setattr(T, "out_of_fold_probs", recording)
    res, pub = run_train(settings(data, tmp_path, label_issue_folds=3))
    n = res.info["rows"]["train"] + res.info["rows"]["validation"]  # the whole train split
    assert sorted(seen["held"]) == list(range(n))  # each row held out exactly once
    assert seen["probs"].shape == (n, 3) and np.allclose(seen["probs"].sum(1), 1, atol=1e-5)
    info = json.loads((Path(pub.location)/"train_metrics.json").read_text())["label_issues"]
    path = tmp_path/"checkpoints"/"label_issues_train.jsonl"
    assert info["file"] == str(path) and (info["folds"], info["rows"]) == (3, n)
    rows = [json.loads(l) for l in path.read_text().splitlines()]
    assert info["flagged"] == len(rows)
    labels = ["card", "loan", "pin"]
    split = load_clean_dataset(data["dataset"])["train"].to_pandas().set_index("id")
    assert all(split.loc[r["id"], "text"] == r["text"] and split.loc[r["id"], "label"] == r["label"] for r in rows)
    expected = label_issues([labels[i] for i in seen["labels"]], seen["probs"], labels)
    assert len(expected) == len(rows)
    with pytest.raises(ValueError, match=r"label_issue_folds must be 0 \(off\) or at least 2, got 1"):
        settings(data, tmp_path, label_issue_folds=1)
