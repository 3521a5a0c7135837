"""Evaluation step tests (unit examples live in nbs/03_eval.ipynb)."""
import json, subprocess, sys, textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import papermill as pm
import pytest
from hypothesis import given, strategies as st

from conftest import LEARNS, NBS, TOPICS, assert_parameters_mirror, write_topic_rows
from finetune_nb.clean import CleanSettings, clean, publish_dataset, run_clean
from finetune_nb.core import papermill_name, setting_names
from finetune_nb.data import load_clean_dataset
from finetune_nb.evaluation import EvalSettings, evaluate, run_eval
from finetune_nb.metrics import correct_at_k
from finetune_nb.predict import Classifier
from finetune_nb.reports import metrics_table
from finetune_nb.testing import tiny_deberta, tiny_nli
from finetune_nb.train import TrainSettings, run_train



@pytest.fixture(scope="module")
def world(tmp_path_factory):
    "A cleaned dataset, a tiny model fine-tuned on it until it tells the three topics apart, and a second, untrained model."
    d = tmp_path_factory.mktemp("eval")
    write_topic_rows(d/"raw.jsonl")
    _, data = run_clean(CleanSettings(input_path=str(d/"raw.jsonl"), label_field="label", target=str(d/"data"),
                                      near_dup_threshold=1.0, test_size=0.5))
    _, model = run_train(TrainSettings(dataset=data.location, base_model=str(tiny_deberta(d/"base", ["x", "y"])),
                                       target=str(d/"model"), wandb_mode="disabled", threads=1, **LEARNS))
    other = tiny_deberta(d/"other", ["card", "loan", "pin"], seed=1)
    return {"dataset": data.location, "model": model.location, "other": str(other), "dir": d}


def test_the_fixture_model_has_learned_the_topics(world, tmp_path):
    "Well above chance (1/3) on the 18 test rows, and its scores tell texts apart: prediction tests can check labels and orders."
    res = evaluate(es(), world["model"], world["dataset"], tmp_path/"pred.jsonl")
    assert res.metrics["fine_tuned"]["top1_accuracy"] >= 0.9
    top = [json.loads(l)["top_scores"][0] for l in (tmp_path/"pred.jsonl").read_text().splitlines()]
    assert np.std(top) > 1e-2  # an untrained model's scores differ from text to text by 1e-6 to 1e-5


def es(**kw) -> EvalSettings: return EvalSettings(**{"wandb_mode": "disabled", "batch_size": 4, **kw})


def test_parameters_cell_mirrors_the_settings_dataclass():
    assert_parameters_mirror("03_eval.ipynb", EvalSettings)


@given(st.lists(st.tuples(st.sampled_from("abcd"), st.permutations("abcd")), min_size=1, max_size=20))
def test_correct_at_k_is_membership_and_grows_with_k(rows):
    true, top = [t for t, _ in rows], [list(p) for _, p in rows]
    at = [correct_at_k(true, top, k) for k in (1, 2, 3, 4)]
    for k in range(1, 4): assert (at[k] >= at[k - 1]).all()
    assert at[3].all() and at[0].tolist() == [int(t == p[0]) for t, p in zip(true, top)]


def test_predictions_come_back_in_input_order(world):
    "Texts of every topic and length, out of order, batched: each comes back with its own label and its own scores."
    clf = Classifier(world["model"])
    texts = [TOPICS[lab].format(w) + " please" * n for lab, w, n in
             [("pin", "zulu", 8), ("card", "yankee", 1), ("loan", "xray", 5), ("card", "whiskey", 3), ("loan", "victor", 11),
              ("pin", "uniform", 0), ("card", "tango", 4)]]
    together, scores = clf.predict(texts, top_k=3, batch_size=3)
    assert [t[0] for t in together] == ["pin", "card", "loan", "card", "loan", "pin", "card"]  # the model knows each one
    alone = [clf.predict([t], top_k=3) for t in texts]
    assert scores == pytest.approx(np.stack([a[1][0] for a in alone]), abs=1e-5)  # each text's own scores, batched or not
    for labs, s, (one_labs, _) in zip(together, scores, alone):  # and its own order, wherever two scores are not a near-tie
        for k in range(3): assert labs[k] == one_labs[0][k] or min(abs(s[k] - s[j]) for j in range(3) if j != k) < 1e-5


def test_metrics_and_records_on_the_test_split(world, tmp_path):
    res = evaluate(es(), world["model"], world["dataset"], tmp_path/"pred.jsonl")
    lines = (tmp_path/"pred.jsonl").read_text().splitlines()
    recs = [json.loads(l) for l in lines]
    assert len(recs) == res.metrics["rows"] == 18 and len({r["id"] for r in recs}) == 18
    for r in recs:
        assert len(r["top_labels"]) == 3 and r["correct@1"] == int(r["label"] == r["top_labels"][0])
        assert r["correct@3"] == 1  # 3 labels: the true one is always in the top 3
    m = json.loads((tmp_path/"metrics.json").read_text())["fine_tuned"]
    assert m["top1_accuracy"] == pytest.approx(sum(r["correct@1"] for r in recs)/18) and m["top3_accuracy"] == 1.0
    # calibration from the records alone, bin by bin (15 equal-width bins): the gap between confidence and accuracy
    conf, ok = np.array([r["top_scores"][0] for r in recs]), np.array([r["correct@1"] for r in recs], dtype=bool)
    which = np.minimum((conf*15).astype(int), 14)
    ece = sum((which == b).sum()*abs(ok[which == b].mean() - conf[which == b].mean()) for b in set(which))/18
    assert m["ece"] == pytest.approx(ece) and sum(b["rows"] for b in m["calibration"]) == 18
    assert (tmp_path/"pred.reliability.png").read_bytes()[:4] == b"\x89PNG"


def test_unknown_labels_are_an_error_before_any_prediction(world, tmp_path, monkeypatch):
    res = clean(CleanSettings(input_path=str(world["dir"]/"raw.jsonl"), label_field="label", near_dup_threshold=1.0, test_size=0.5))
    res.test.loc[0, "label"] = "mortgage"
    bad = publish_dataset(res, tmp_path/"bad").location
    monkeypatch.setattr(Classifier, "predict", lambda *a, **k: pytest.fail("prediction started"))
    with pytest.raises(ValueError, match=r"labels the model does not know: \['mortgage'\]"):
        evaluate(es(), world["model"], bad, tmp_path/"pred.jsonl")
    assert not (tmp_path/"pred.jsonl").exists()


def test_unlabelled_examples_are_predicted_without_flags(world, tmp_path):
    f = tmp_path/"ex.jsonl"
    f.write_text('{"body": "my card golf has not arrived", "y": "card"}\n{"body": "borrow money"}\n{"body": "pin", "y": null}\n')
    res = evaluate(es(examples=str(f), text_field="body", label_field="y"), world["model"], output=tmp_path/"p.jsonl")
    recs = {r["id"]: r for r in map(json.loads, (tmp_path/"p.jsonl").read_text().splitlines())}
    assert "correct@1" in recs[1] and "correct@1" not in recs[2] and recs[2]["label"] is None and len(recs[3]["top_labels"]) == 3
    assert (res.metrics["labelled"], res.metrics["unlabelled"]) == (1, 2)
    only = evaluate(es(examples=str(f), text_field="body", label_field=""), world["model"], output=tmp_path/"q"/"q.jsonl")
    assert only.metrics["unlabelled"] == 3 and "fine_tuned" not in only.metrics


def test_resume_after_the_writer_is_killed(world, tmp_path, monkeypatch):
    out = tmp_path/"pred.jsonl"
    script = f"""
        import os, finetune_nb.evaluation as E
        real, calls = E.append_records, []
        def dying(path, records):
            calls.append(1) if path.name == "pred.jsonl" else None  # the records, not every label's score beside them
            if len(calls) == 2:  # killed in the middle of the second write
                with open(path, "a") as f: f.write('{{"id": 999, "text": "half'); f.flush()
                os._exit(9)
            real(path, records)
        E.append_records = dying
        E.evaluate(E.EvalSettings(wandb_mode="disabled", batch_size=2), {world['model']!r}, {world['dataset']!r}, {str(out)!r}, chunk_rows=5)
    """
    assert subprocess.run([sys.executable, "-c", textwrap.dedent(script)]).returncode == 9
    first = out.read_text()
    assert first.count("\n") == 5 and not first.endswith("\n")
    predicted = []
    real_predict = Classifier.predict
    monkeypatch.setattr(Classifier, "predict", lambda self, texts, *a, **k: predicted.extend(texts) or real_predict(self, texts, *a, **k))
    res = evaluate(es(), world["model"], world["dataset"], out, chunk_rows=5)
    ids = [json.loads(l)["id"] for l in out.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 18 and 999 not in ids and len(predicted) == 13
    assert out.read_text().startswith(first[:first.rindex("\n") + 1]) and res.metrics["rows"] == 18


def ranked_by_the_documented_rule(probs: dict, given: dict, labels: list) -> list[int]:
    "cleanlab's flagged rows on these scores, most suspect first: the given label's score (6 decimals), ties by id."
    from cleanlab.filter import find_label_issues
    ids = sorted(probs)
    y = np.array([labels.index(given[i]) for i in ids])
    P = np.array([probs[i] for i in ids]); P = P/P.sum(1, keepdims=True)
    flagged = [i for i, f in zip(ids, find_label_issues(y, P, filter_by="prune_by_noise_rate")) if f]
    return sorted(flagged, key=lambda i: (round(P[ids.index(i), labels.index(given[i])], 6), i))


def test_label_issues_are_cleanlabs_on_every_labels_score_and_survive_a_lost_scores_file(world, tmp_path, monkeypatch):
    "Three test labels flipped: the learned model flags them; the ranking is the documented rule on the written scores."
    res = clean(CleanSettings(input_path=str(world["dir"]/"raw.jsonl"), label_field="label", near_dup_threshold=1.0, test_size=0.5))
    swap = {"card": "loan", "loan": "pin", "pin": "card"}
    flipped = res.test["id"].iloc[[0, 7, 13]].tolist()
    res.test.loc[res.test["id"].isin(flipped), "label"] = res.test.loc[res.test["id"].isin(flipped), "label"].map(swap)
    dataset = publish_dataset(res, tmp_path/"flipped").location
    out = tmp_path/"pred.jsonl"
    res = evaluate(es(), world["model"], dataset, out)
    recs = {json.loads(l)["id"]: json.loads(l) for l in out.read_text().splitlines()}
    read_probs = lambda: {r["id"]: r["probs"] for r in map(json.loads, (tmp_path/"pred.probs.jsonl").read_text().splitlines())}
    probs = read_probs()
    assert set(probs) == set(recs)
    labels = Classifier(world["model"]).labels
    for i, r in recs.items():  # the scores file agrees with the records: the top-k scores are its k largest, in order
        assert [probs[i][labels.index(l)] for l in r["top_labels"]] == pytest.approx(sorted(probs[i], reverse=True)[:3], abs=1e-6)
        assert sum(probs[i]) == pytest.approx(1, abs=1e-4)
    issues = [json.loads(l) for l in (tmp_path/"label_issues.jsonl").read_text().splitlines()]
    assert res.metrics["label_issues"]["rows"] == len(issues) and res.metrics["label_issues"]["of"] == 18
    given = {i: r["label"] for i, r in recs.items()}
    expected = ranked_by_the_documented_rule(probs, given, labels)
    assert [x["id"] for x in issues] == expected and [x["rank"] for x in issues] == list(range(1, len(issues) + 1))
    assert set(flipped) <= set(expected)  # the model learned the topics: every flipped row is found
    for x in issues:
        r = recs[x["id"]]
        assert (x["text"], x["label"], x["suggested"]) == (r["text"], r["label"], r["top_labels"][0])
        assert x["label_score"] == pytest.approx(probs[x["id"]][labels.index(r["label"])], abs=1e-5)
    assert [x["label_score"] for x in issues] == sorted(x["label_score"] for x in issues)  # most suspect first
    (tmp_path/"pred.probs.jsonl").unlink()  # e.g. predictions from before this file existed: the scores are predicted again
    predicted = []
    real = Classifier.predict
    monkeypatch.setattr(Classifier, "predict", lambda self, texts, *a, **k: predicted.extend(texts) or real(self, texts, *a, **k))
    again = evaluate(es(), world["model"], dataset, out)
    assert len(predicted) == 18 and again.metrics["label_issues"]["rows"] == len(issues)
    new = read_probs()
    for i in probs: assert new[i] == pytest.approx(probs[i], abs=1e-5)  # predicted in other batches: equal to float noise
    ranking = [json.loads(l)["id"] for l in (tmp_path/"label_issues.jsonl").read_text().splitlines()]
    assert ranking == ranked_by_the_documented_rule(new, given, labels)  # the rule, on the scores written now
    if new == probs: assert ranking == expected  # the same written scores: the very same ranking
    assert (tmp_path/"pred.confusion.png").read_bytes()[:4] == b"\x89PNG"


def test_int8_predictions_are_never_mixed_with_full_precision_ones(world, tmp_path):
    out = tmp_path/"pred.jsonl"
    full = evaluate(es(), world["model"], world["dataset"], out)
    with pytest.raises(FileExistsError, match="holds predictions of another model"):
        evaluate(es(quantize=True), world["model"], world["dataset"], out)
    q = evaluate(es(quantize=True), world["model"], world["dataset"], tmp_path/"q"/"pred.jsonl")
    assert q.metrics["quantized"] and not full.metrics["quantized"]
    assert q.metrics["fingerprint"] == full.metrics["fingerprint"] + "+int8" and q.metrics["rows"] == 18


def test_onnx_runtime_predicts_what_torch_does_and_its_records_never_mix_with_torchs(world, tmp_path, monkeypatch):
    "`--runtime onnx`: the graph exported once into the cache, the same labels in the same order and the same scores as PyTorch."
    monkeypatch.setenv("FINETUNE_NB_CACHE", str(tmp_path/"cache"))
    full = evaluate(es(), world["model"], world["dataset"], tmp_path/"torch"/"pred.jsonl")
    fast = evaluate(es(runtime="onnx"), world["model"], world["dataset"], tmp_path/"onnx"/"pred.jsonl")
    assert (fast.metrics["runtime"], full.metrics["runtime"]) == ("onnx", "torch")
    assert fast.metrics["fingerprint"] == full.metrics["fingerprint"] + "+onnx"
    assert len(list((tmp_path/"cache"/"onnx").glob("*/model.onnx"))) == 1
    a, b = full.records, fast.records
    assert a["id"].tolist() == b["id"].tolist() and a["top_labels"].tolist() == b["top_labels"].tolist()
    np.testing.assert_allclose(np.stack(b["top_scores"]), np.stack(a["top_scores"]), atol=2e-6)  # 6 decimals written
    for key in ("top1_accuracy", "top3_accuracy", "macro_f1", "confusion_matrix"):
        assert fast.metrics["fine_tuned"][key] == full.metrics["fine_tuned"][key], key
    with pytest.raises(FileExistsError, match="holds predictions of another model"):
        evaluate(es(runtime="onnx"), world["model"], world["dataset"], tmp_path/"torch"/"pred.jsonl")


def test_a_hub_models_weights_are_named_by_the_commit_they_were_read_at(world, tmp_path):
    "transformers 5 configs carry no commit: it comes from the Hub cache's snapshot folder, so two commits never share a fingerprint or an ONNX graph."
    import os, shutil
    sha = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path/"hub"/"models--acme--clf"
    shutil.copytree(world["model"], repo/"snapshots"/sha)
    (repo/"refs").mkdir(); (repo/"refs"/"main").write_text(sha)
    code = "from finetune_nb.predict import Classifier; c = Classifier('acme/clf', device='cpu'); print(c.weights_id, c.fingerprint)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "HF_HUB_CACHE": str(tmp_path/"hub"), "HF_HUB_OFFLINE": "1"}).stdout
    assert out.split()[-2:] == [sha, sha]


def test_a_full_disk_while_writing_records_says_where_and_a_rerun_finishes(world, tmp_path, monkeypatch):
    "The disk fills during the second append (fsync fails): the error names the file; the first chunk's records stay."
    import errno, os as os_module
    out, real, calls = tmp_path/"pred.jsonl", os_module.fsync, []
    def filling(fd):
        calls.append(fd)
        if len(calls) == 2: raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd)
    monkeypatch.setattr(os_module, "fsync", filling)
    with pytest.raises(OSError, match=rf"{out}: could not write \(the disk is full\); the records written before are kept"):
        evaluate(es(), world["model"], world["dataset"], out, chunk_rows=5)
    monkeypatch.setattr(os_module, "fsync", real)
    assert len(out.read_text().splitlines()) >= 5
    res = evaluate(es(), world["model"], world["dataset"], out, chunk_rows=5)
    ids = [json.loads(l)["id"] for l in out.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == res.metrics["rows"] == 18


def test_another_model_into_the_same_output_is_refused(world, tmp_path):
    out = tmp_path/"pred.jsonl"
    evaluate(es(max_samples=4), world["model"], world["dataset"], out)
    with pytest.raises(FileExistsError, match="another model .*; pass overwrite=True to replace them, or choose another output"):
        evaluate(es(), world["other"], world["dataset"], out)
    with setting_names(papermill_name), pytest.raises(FileExistsError, match="pass -p overwrite True to .* another -p output"):
        evaluate(es(), world["other"], world["dataset"], out)  # in the words of whoever runs it
    res = evaluate(es(overwrite=True), world["other"], world["dataset"], out)
    assert {json.loads(l)["model"] for l in out.read_text().splitlines()} == {world["other"]} and res.metrics["rows"] == 18


def test_a_second_predictions_file_in_the_folder_does_not_replace_the_first_ones_metrics(world, tmp_path):
    evaluate(es(max_samples=4), world["model"], world["dataset"], tmp_path/"a.jsonl")
    with pytest.raises(FileExistsError, match=r"metrics.json holds the metrics of a.jsonl; evaluating into b.jsonl would replace"):
        evaluate(es(max_samples=4), world["model"], world["dataset"], tmp_path/"b.jsonl")
    assert not (tmp_path/"b.jsonl").exists() and json.loads((tmp_path/"metrics.json").read_text())["output"].endswith("a.jsonl")
    evaluate(es(max_samples=4), world["model"], world["dataset"], tmp_path/"a.jsonl")  # the same file again: resumes


def test_zero_shot_baseline_sits_beside_the_fine_tuned_row(world, tmp_path):
    "The zero-shot row is the NLI pipeline's own ranking of the model's labels on the same rows, scored as the fine-tuned row."
    from sklearn.metrics import f1_score
    from transformers import pipeline
    nli = str(tiny_nli(tmp_path/"nli"))
    res = evaluate(es(zero_shot_model=nli), world["model"], world["dataset"], tmp_path/"p.jsonl")
    m = json.loads((tmp_path/"metrics.json").read_text())
    assert set(m) >= {"fine_tuned", "zero_shot"} and m["zero_shot"]["model"] == nli
    rows = res.records
    labels = Classifier(world["model"]).labels
    ranked = pipeline("zero-shot-classification", model=nli, device="cpu")(
        rows["text"].tolist(), candidate_labels=labels, hypothesis_template="This example is about {}.")
    top = [r["labels"] for r in ranked]
    true = rows["label"].tolist()
    for k in (1, 2, 3): assert m["zero_shot"][f"top{k}_accuracy"] == pytest.approx(np.mean([t in r[:k] for t, r in zip(true, top)]))
    assert m["zero_shot"]["macro_f1"] == pytest.approx(f1_score(true, [r[0] for r in top], labels=labels, average="macro", zero_division=0))
    assert m["zero_shot"]["confusion_matrix"]["labels"] == labels and len(rows) == sum(map(sum, m["zero_shot"]["confusion_matrix"]["matrix"]))


def test_the_baseline_is_fitted_on_the_models_training_rows_and_scored_on_the_same_rows(world, tmp_path):
    "The documented TF-IDF + logistic regression, fitted by hand on the ids in training_rows.json, ranks the evaluated rows as metrics.json says."
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.pipeline import make_pipeline
    res = evaluate(es(), world["model"], world["dataset"], tmp_path/"p.jsonl")
    b = json.loads((tmp_path/"metrics.json").read_text())["baseline"]
    used = json.loads(Path(world["model"], "training_rows.json").read_text())
    train = load_clean_dataset(world["dataset"])["train"].to_pandas().set_index("id")
    assert b["fitted_on"] == {"train": len(used["train"]), "validation": 0} and 0 < len(used["train"]) < len(train)
    assert b["class_weights"] == "none"  # as the model was trained
    rows = train.loc[used["train"]]  # the rows the model learnt from, not the validation rows that picked its checkpoint
    pipe = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, strip_accents="unicode"),
                         LogisticRegression(C=10.0, max_iter=2000)).fit(rows["text"].tolist(), rows["label"].tolist())
    labels = Classifier(world["model"]).labels
    P = pipe.predict_proba(res.records["text"].tolist())[:, [list(pipe.classes_).index(l) for l in labels]]
    top = [[labels[j] for j in np.argsort(-p, kind="stable")] for p in P]
    true = res.records["label"].tolist()  # the same rows as the fine-tuned model's
    for k in (1, 2, 3): assert b[f"top{k}_accuracy"] == pytest.approx(np.mean([t in r[:k] for t, r in zip(true, top)]))
    assert b["macro_f1"] == pytest.approx(f1_score(true, [r[0] for r in top], labels=labels, average="macro", zero_division=0))
    assert sum(map(sum, b["confusion_matrix"]["matrix"])) == len(true) == res.metrics["labelled"]


def test_a_model_without_its_training_rows_gets_no_baseline_and_says_why(world, tmp_path):
    m = evaluate(es(), world["other"], world["dataset"], tmp_path/"a"/"p.jsonl").metrics
    assert "training_rows.json" in m["baseline"]["skipped"] and "| TF-IDF" not in metrics_table(m)
    assert "baseline" not in evaluate(es(baseline=False), world["model"], world["dataset"], tmp_path/"b"/"p.jsonl").metrics


def test_card_gains_one_test_metrics_section(world, tmp_path):
    import shutil
    model = tmp_path/"model"; shutil.copytree(world["model"], model)
    for _ in range(2): run_eval(es(model=str(model), dataset=world["dataset"], output=str(tmp_path/"p.jsonl"), overwrite=True))
    card = (model/"README.md").read_text()
    assert card.count("## Test metrics") == 1 and "| fine-tuned |" in card and card.count("| TF-IDF + LR baseline |") == 1
    from huggingface_hub import ModelCard
    results = ModelCard.load(model/"README.md").data.eval_results  # the model-index the Hub shows as evaluation results
    got = {(r.metric_type, r.metric_config): r.metric_value for r in results}
    test = json.loads((tmp_path/"metrics.json").read_text())["fine_tuned"]
    assert len(results) == len(got) == 5 and {r.dataset_split for r in results} == {"test"}  # replaced, not added twice
    assert got[("accuracy", None)] == round(test["top1_accuracy"], 4) and got[("f1", "macro")] == round(test["macro_f1"], 4)
    assert got[("top_k_accuracy", "k=3")] == round(test["top3_accuracy"], 4)


def test_papermill_on_published_model_and_dataset(world, tmp_path):
    out = tmp_path/"pred.jsonl"
    pm.execute_notebook(NBS/"03_eval.ipynb", tmp_path/"out.ipynb", cwd=str(NBS), progress_bar=False, kernel_name="python3",
                        parameters=dict(model=world["model"], dataset=world["dataset"], output=str(out), wandb_mode="disabled"))
    assert len(out.read_text().splitlines()) == 18 and (tmp_path/"metrics.json").exists()


def test_resume_refuses_other_rows_or_top_k_under_the_same_ids(world, tmp_path):
    a, b = tmp_path/"a.jsonl", tmp_path/"b.jsonl"
    a.write_text('{"text": "my card alpha has not arrived", "category": "card"}\n')
    b.write_text('{"text": "can i borrow golf for a car", "category": "loan"}\n')
    out = tmp_path/"p.jsonl"
    evaluate(es(examples=str(a)), world["model"], output=out)
    with pytest.raises(FileExistsError, match="other rows or another top_k"): evaluate(es(examples=str(b)), world["model"], output=out)
    with pytest.raises(FileExistsError, match="other rows or another top_k"): evaluate(es(examples=str(a), top_k=1), world["model"], output=out)


def test_texts_with_line_separators_survive_the_records(world, tmp_path):
    f = tmp_path/"ex.jsonl"
    f.write_text(json.dumps({"text": "my card\u0085has\u2028not\x1earrived", "category": "card"}) + "\n")
    res = evaluate(es(examples=str(f)), world["model"], output=tmp_path/"p.jsonl")
    assert res.records["text"].tolist() == ["my card\u0085has\u2028not\x1earrived"]
    assert len((tmp_path/"p.jsonl").read_text(encoding="utf-8").splitlines()) == 1


def test_evaluation_cuts_texts_where_training_did(tmp_path):
    "A model trained at max_length=32 carries that length (tokenizer, card), and evaluation cuts exactly the texts training would (`long_texts='truncate'`; chunks: tests/test_long.py)."
    from transformers import AutoTokenizer
    words = ["my", "card", "is", "the", "new", "pin", "where", "how", "change", "account"]  # a token each, for the tiny tokenizer
    rows = [{"text": f"{topic} " + " ".join(words[(i + k) % 10] for k in range(4 + 6*i)), "label": topic}
            for topic in ("card", "loan") for i in range(10)]  # 4 to 58 words: some longer than 32 tokens, some not
    (tmp_path/"raw.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    _, data = run_clean(CleanSettings(input_path=str(tmp_path/"raw.jsonl"), label_field="label", target=str(tmp_path/"data"),
                                      near_dup_threshold=1.0, test_size=0.5))
    base = tiny_deberta(tmp_path/"base", ["x", "y"])
    res, model = run_train(TrainSettings(dataset=data.location, base_model=str(base), target=str(tmp_path/"model"), epochs=1,
                                         batch_size=4, max_length=32, long_texts="truncate", wandb_mode="disabled", threads=1))
    published = json.loads((tmp_path/"model"/"tokenizer_config.json").read_text())
    assert published["model_max_length"] == 32 and AutoTokenizer.from_pretrained(base).model_max_length > 32
    assert "cuts inputs at 32 tokens" in (tmp_path/"model"/"README.md").read_text()
    out = run_eval(es(model=model.location, output=str(tmp_path/"pred.jsonl"))).metrics
    tok = AutoTokenizer.from_pretrained(base)  # the base tokenizer, no limit of its own: the lengths as they are
    test = pd.read_parquet(next((tmp_path/"data"/"data").glob("test-*.parquet")))
    long = {int(i) for i, t in zip(test.id, test.text) if len(tok(t, verbose=False)["input_ids"]) > 32}
    assert 0 < len(long) < len(test)  # the test split has texts on both sides of the limit
    assert out["truncated"] == {"max_length": 32, "rows": len(long)}
    recs = [json.loads(l) for l in (tmp_path/"pred.jsonl").read_text().splitlines()]
    assert {r["id"] for r in recs if r["truncated"]} == long
    assert res.info["truncated"]["train"] + res.info["truncated"]["validation"] == \
        sum(len(tok(t, verbose=False)["input_ids"]) > 32 for t in pd.read_parquet(next((tmp_path/"data"/"data").glob("train-*.parquet"))).text)


def test_a_file_read_in_parts_gives_the_figures_of_the_whole(world, tmp_path, monkeypatch):
    "A gzip-compressed examples file, parts of 5 rows, skipped and unlabelled lines, max_samples: the records and every figure are those of the rows at once."
    import gzip
    import finetune_nb.evaluation as ev
    from finetune_nb.metrics import top1_calibration, topk_metrics
    from conftest import TOPICS, WORDS
    lines = [json.dumps({"text": t.format(w), "y": lab}) for lab, t in TOPICS.items() for w in WORDS]
    lines[3], lines[10], lines[20] = "{broken", json.dumps({"text": "no label here"}), ""
    f = tmp_path/"ex.jsonl.gz"
    f.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    monkeypatch.setattr(ev, "LABEL_ISSUE_ROWS", 10)  # fewer than the labelled rows: a sample
    res = evaluate(es(examples=str(f), text_field="text", label_field="y", max_samples=30), world["model"], output=tmp_path/"p.jsonl",
                   chunk_rows=5)
    recs = [json.loads(l) for l in (tmp_path/"p.jsonl").read_text().splitlines()]
    kept = [i for i, l in enumerate(lines, 1) if l and l != "{broken"][:30]  # line numbers of the first 30 rows
    assert [r["id"] for r in recs] == kept and res.records["id"].tolist() == kept
    m = res.metrics
    assert (m["rows"], m["labelled"], m["unlabelled"], m["skipped_lines"]) == (30, 29, 1, 2)
    lab = [r for r in recs if r["label"] is not None]
    whole = topk_metrics([r["label"] for r in lab], [r["top_labels"] for r in lab], Classifier(world["model"]).labels, 3)
    assert m["fine_tuned"]["confusion_matrix"] == whole["confusion_matrix"]
    assert m["fine_tuned"]["top1_accuracy"] == pytest.approx(whole["top1_accuracy"]) and m["fine_tuned"]["macro_f1"] == pytest.approx(whole["macro_f1"])
    assert m["fine_tuned"]["ece"] == pytest.approx(top1_calibration(pd.DataFrame(lab))["ece"])
    assert m["label_issues"]["of"] == 10 and "a seeded uniform sample of 10 of the 29 labelled rows" in m["label_issues"]["method"]
    again = evaluate(es(examples=str(f), text_field="text", label_field="y", max_samples=30), world["model"], output=tmp_path/"p.jsonl",
                     chunk_rows=7)  # resumed: nothing to predict, the same figures
    assert again.metrics["throughput"]["texts"] == 0 and again.metrics["fine_tuned"] == m["fine_tuned"]
