"Texts longer than the window (issue 24): truncate, head-tail and chunks, the same in training and prediction, pooled per text, through every step."
import json, subprocess, sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import nothing_written, quick, run, write
from finetune_nb.core import sample_data
from finetune_nb.data import chunk_overlap, encode_texts
from finetune_nb.orchestrate import main
from finetune_nb.predict import Classifier

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent/"shared"/"data"/"banking77"
BAD_INPUTS = 7  # kinds of bad long-text settings, each refused before any work (nbs/reliability.md states it)
FILLER = "we went to the shop and then walked home along the river before dinner"
MARK = {"card": "my card has not arrived", "pin": "how do i change the pin", "loan": "can i borrow money for a car"}


def documents(path: Path, n: int = 12, filler: int = 6) -> Path:
    "Long documents of neutral filler with the topic's sentence in the middle; a `subject` that says nothing; one short text."
    rows = [{"subject": f"message {i}", "body": " ".join([FILLER]*filler + [MARK[lab]] + [FILLER]*filler), "label": lab}
            for lab in MARK for i in range(n)]
    rows.append({"subject": "short", "body": MARK["card"], "label": "card"})
    return write(path, rows)


@pytest.fixture(scope="module")
def long_run(base, tmp_path_factory):
    "One run on long two-field documents at a 48-token window, chunked, with k-fold label issues and temperature scaling."
    runs = tmp_path_factory.mktemp("long")/"runs"
    f = documents(runs.parent/"docs.jsonl")
    assert main([str(f), *quick(base, runs), "--text-field", "subject", "--text-field", "body", "--max-length", "48",
                 "--long-texts", "chunks", "--max-chunks", "5", "--label-issue-folds", "2", "--temperature-scaling"]) == 0
    (run_dir,) = runs.iterdir()
    return run_dir


def test_chunks_are_the_tokenizers_own_overflowing_windows():
    "Single texts: the windows of `return_overflowing_tokens` with the same stride; a pair: `only_second`, the subject in each."
    from transformers import AutoTokenizer
    from finetune_nb.train import resolve_base_model
    tok = AutoTokenizer.from_pretrained(resolve_base_model(""))  # the offline MiniLM's WordPiece tokenizer
    docs = [json.loads(l)["body"] for l in sample_data("banking77_long.jsonl").read_text().splitlines()[:30] if "body" in l]
    for L, stride in ((64, -1), (128, 0), (128, 17)):
        e = encode_texts(tok, docs, L, "chunks", stride)
        native = tok(docs, truncation=True, max_length=L, stride=chunk_overlap(L - 2, stride), return_overflowing_tokens=True)
        assert e.input_ids == native["input_ids"] and e.doc.tolist() == native["overflow_to_sample_mapping"]
        assert e.chunks.tolist() == np.bincount(e.doc).tolist() and (e.chunks > 1).all()
    subject = "card query"
    room = 64 - 3 - len(tok(subject, add_special_tokens=False)["input_ids"])
    pair = encode_texts(tok, [(subject, docs[0])], 64, "chunks")
    native = tok([subject], [docs[0]], truncation="only_second", max_length=64, stride=chunk_overlap(room), return_overflowing_tokens=True)
    assert pair.input_ids == native["input_ids"] and pair.token_type_ids == native["token_type_ids"]


def test_the_signal_in_the_middle_reaches_the_model_only_in_chunks():
    "What each handling feeds the model: the middle of a long text is in no input when truncated or head-and-tail, in one chunk."
    from transformers import AutoTokenizer
    from finetune_nb.train import resolve_base_model
    tok = AutoTokenizer.from_pretrained(resolve_base_model(""))
    doc = " ".join([FILLER]*8 + ["zebra"] + [FILLER]*8)  # about 250 tokens, the word at the middle
    zebra = tok("zebra", add_special_tokens=False)["input_ids"]
    has = lambda row: any(row[i:i + len(zebra)] == zebra for i in range(len(row)))
    seen = {h: [has(r) for r in encode_texts(tok, [doc], 64, h).input_ids] for h in ("truncate", "head-tail", "chunks")}
    assert seen["truncate"] == [False] and seen["head-tail"] == [False] and any(seen["chunks"]) and len(seen["chunks"]) > 3
    tail = " ".join([FILLER]*8 + ["zebra"])  # at the end: head-tail keeps it, truncation does not
    assert [has(r) for r in encode_texts(tok, [tail], 64, "head-tail").input_ids] == [True]
    assert [has(r) for r in encode_texts(tok, [tail], 64, "truncate").input_ids] == [False]


def test_training_and_prediction_feed_the_model_the_same_chunks(base):
    "The training split's rows of a text are the rows the published model's predictor makes of it."
    from transformers import AutoTokenizer
    from finetune_nb.train import tokenize
    docs = [" ".join([FILLER]*3 + [MARK[l]] + [FILLER]*(i % 4)) for i, l in enumerate(["card", "pin", "loan"]*3)]
    df = pd.DataFrame({"id": range(1, 10), "text": docs, "label": ["card", "pin", "loan"]*3})
    tok = AutoTokenizer.from_pretrained(str(base))
    ds = tokenize(df, tok, {"card": 0, "loan": 1, "pin": 2}, 32, "chunks", 4, 3)
    clf = Classifier(str(base), max_length=32, long_texts="chunks", max_chunks=3)
    clf.long_texts["stride"] = 4
    e = clf.encode(docs)
    assert ds["input_ids"] == e.input_ids and ds["doc"] == e.doc.tolist() and len(ds) > len(docs)
    assert ds["labels"] == [{"card": 0, "loan": 1, "pin": 2}[df.label[d]] for d in e.doc]  # every chunk carries its text's label
    assert [ds["capped"][ds["doc"].index(d)] for d in range(9)] == clf.capped.tolist()


class TokenMean:
    "A stand-in model whose two logits are ± the mean of (token id mod 7) over the unpadded tokens: chunks score differently."
    def __call__(self, input_ids, attention_mask=None, **kw):
        import torch
        from types import SimpleNamespace
        m = torch.ones_like(input_ids) if attention_mask is None else attention_mask
        x = ((input_ids % 7).float()*m).sum(1)/m.sum(1)
        return SimpleNamespace(logits=torch.stack([x, -x], -1))


def test_pooled_scores_are_each_chunks_own_scores_averaged_or_maxed(base):
    "A chunked text's scores: the mean (or each label's max, renormalised) of the model's scores of each chunk alone."
    import torch
    said = [json.loads(l)["text"] for l in sample_data().read_text(encoding="utf-8", errors="replace").splitlines()[:60] if '"text": "' in l]
    docs = [" ".join(said[:12]), "short text", " ".join(said[12:40])]  # real queries, one after another: chunks that differ
    pooled = {}
    for pool in ("mean", "max"):
        clf = Classifier(str(base), max_length=32, long_texts="chunks", pool=pool)
        clf.model = TokenMean()  # a random tiny encoder scores every chunk alike: a model whose scores follow the tokens
        labels, scores = clf.predict(docs, top_k=2, keep_probs=True)
        pooled[pool] = clf.probs.copy()
        e = clf.encode(docs)
        with torch.inference_mode():
            alone = [clf.model(input_ids=torch.tensor([r])).logits.softmax(-1)[0].numpy() for r in e.input_ids]
        for d in range(3):
            rows = np.array([p for p, k in zip(alone, e.doc) if k == d])
            want = rows.mean(0) if pool == "mean" else rows.max(0)/rows.max(0).sum()
            np.testing.assert_allclose(clf.probs[d], want, atol=1e-5)
            assert labels[d] == [clf.labels[i] for i in np.argsort(-want, kind="stable")[:2]]
        assert clf.chunks.tolist()[1] == 1 and clf.chunks[0] > 1 and clf.chunks[2] > 1
    assert np.abs(pooled["mean"][[0, 2]] - pooled["max"][[0, 2]]).max() > 0.01  # the two poolings differ here: the check could fail


def test_a_long_two_field_run_reads_every_text_in_chunks_through_every_step(long_run):
    record = json.loads((long_run/"run.json").read_text())
    assert record["status"] == "done" and record["settings"]["long_texts"] == "chunks"
    model = Path(record["artefacts"]["model"]["local"])
    config = json.loads((model/"config.json").read_text())
    assert config["finetune_nb_long_texts"] == {"handling": "chunks", "stride": -1, "max_chunks": 5, "pool": "mean", "chunk_loss": "chunk"}
    info = json.loads((model/"train_metrics.json").read_text())
    n = info["long_texts"]["inputs"]
    assert n["train"]["texts"] == info["rows"]["train"] and n["train"]["inputs"] > 3*n["train"]["texts"]  # rows are texts, inputs chunks
    assert n["validation"]["texts"] == info["rows"]["validation"] == info["temperature"]["validation_rows"]  # calibrated on texts
    assert n["train"]["chunks_left_out"] > 0  # max_chunks=5 cut the longest
    issues = [json.loads(l) for l in Path(info["label_issues"]["file"]).read_text().splitlines()]
    assert info["label_issues"]["rows"] == info["rows"]["train"] + info["rows"]["validation"]  # folds of texts, not of chunks
    assert len({r["id"] for r in issues}) == len(issues)
    recs = [json.loads(l) for l in Path(record["artefacts"]["predictions"]).read_text().splitlines()]
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(str(model))
    e = encode_texts(tok, [(r["text"]["subject"], r["text"]["body"]) for r in recs], 48, "chunks", -1, 5)
    assert [r["chunks"] for r in recs] == e.chunks.tolist() and [r["truncated"] for r in recs] == e.truncated.tolist()
    metrics = json.loads(Path(record["artefacts"]["metrics"]).read_text())
    assert metrics["long_texts"]["inputs"] == sum(r["chunks"] for r in recs) and metrics["throughput"]["inputs"] == len(e.input_ids)
    assert metrics["long_texts"]["handling"] == "chunks" and metrics["throughput"]["texts"] == len(recs)
    summary = (long_run/"summary.md").read_text()
    assert "**Long texts**: long texts in overlapping chunks, scores pooled (chunks): train" in summary
    assert f"read in {metrics['long_texts']['inputs']:,} inputs, scores pooled by mean" in summary
    card = (model/"README.md").read_text()
    assert "read in overlapping 48-token chunks" in card and "at most 5 a text" in card


def test_a_loss_per_text_trains_on_batches_of_whole_texts_in_every_fine_tuning(base, tmp_path):
    "`--chunk-loss text`: batches count texts (the steps say so), with accumulation and class weights; label-issue folds train the same way."
    import math
    runs = tmp_path/"runs"
    f = documents(tmp_path/"docs.jsonl", n=10)
    assert main([str(f), *quick(base, runs), "--text-field", "subject", "--text-field", "body", "--max-length", "48", "--chunk-loss", "text",
                 "--gradient-accumulation", "2", "--class-weights", "balanced", "--label-issue-folds", "2"]) == 0
    (run_dir,) = runs.iterdir()
    record = json.loads((run_dir/"run.json").read_text())
    model = Path(record["artefacts"]["model"]["local"])
    assert json.loads((model/"config.json").read_text())["finetune_nb_long_texts"]["chunk_loss"] == "text"
    info = json.loads((model/"train_metrics.json").read_text())
    n = info["long_texts"]["inputs"]["train"]
    assert n["inputs"] > 3*n["texts"] and info["long_texts"]["chunk_loss"] == "text"
    assert info["best_step"] == math.ceil(n["texts"]/(4*2)) != math.ceil(n["inputs"]/(4*2))  # one epoch of batches of 4 texts, 2 accumulated
    assert info["label_issues"]["rows"] == info["rows"]["train"] + info["rows"]["validation"]
    recs = [json.loads(l) for l in Path(record["artefacts"]["predictions"]).read_text().splitlines()]
    assert len(recs) == json.loads(Path(record["artefacts"]["metrics"]).read_text())["labelled"]  # one record per text
    assert all(r["chunks"] >= 1 for r in recs) and max(r["chunks"] for r in recs) > 1
    assert "trained on each text's pooled score (chunk_loss='text')" in (run_dir/"summary.md").read_text()
    assert "trained on batches of whole texts, the loss on each text's pooled score" in (model/"README.md").read_text()


def test_examples_are_read_as_the_model_was_trained_unless_told_otherwise(long_run, tmp_path, capsys):
    record = json.loads((long_run/"run.json").read_text())
    model = record["artefacts"]["model"]["local"]
    recs = [json.loads(l) for l in Path(record["artefacts"]["predictions"]).read_text().splitlines()]
    f = write(tmp_path/"new.jsonl", [{**r["text"], "label": r["label"]} for r in recs])
    got = {}
    for how in ("", "truncate", "max"):
        runs = tmp_path/f"runs-{how or 'model'}"
        extra = {"": [], "truncate": ["--long-texts", "truncate"], "max": ["--pool", "max"]}[how]
        code, _, err = run(capsys, ["--model", model, "--examples", str(f), "--label-field", "label", "--runs-dir", str(runs),
                                    "--wandb-mode", "disabled", *extra])
        assert code == 0, err
        got[how] = [json.loads(l) for l in next(runs.rglob("predictions.jsonl")).read_text().splitlines()]
    assert [r["top_scores"] for r in got[""]] == [r["top_scores"] for r in recs]  # the model's own handling, the run's scores
    assert [r["chunks"] for r in got[""]] == [r["chunks"] for r in recs] and got[""][0]["fingerprint"] == recs[0]["fingerprint"]
    assert "chunks" not in got["truncate"][0] and got["truncate"][0]["fingerprint"] == recs[0]["fingerprint"] + "+truncate"
    assert got["max"][0]["fingerprint"] == recs[0]["fingerprint"] + "+chunks:max:5"  # the predictor was told: pooled by max


def test_short_texts_train_and_predict_the_same_whatever_the_handling(base, tmp_path):
    "No text longer than the window: every handling trains the same weights and predicts the same scores."
    import hashlib
    runs, f = tmp_path/"runs", documents(tmp_path/"docs.jsonl", n=8, filler=0)
    weights, scores = {}, {}
    for how in ("truncate", "chunks"):
        assert main([str(f), *quick(base, runs), "--text-field", "subject", "--text-field", "body", "--long-texts", how, "--name", how]) == 0
        run_dir = next(p for p in runs.iterdir() if p.name.endswith(how))
        weights[how] = hashlib.sha256((run_dir/"model"/"model.safetensors").read_bytes()).hexdigest()
        scores[how] = [json.loads(l)["top_scores"] for l in (run_dir/"eval"/"predictions.jsonl").read_text().splitlines()]
    assert weights["truncate"] == weights["chunks"] and scores["truncate"] == scores["chunks"]


def test_label_sets_of_long_texts_are_decided_on_pooled_scores(base, tmp_path):
    "Multi-label documents: thresholds tuned on the validation texts' pooled scores; every record's set from its pooled scores."
    rows = [{"text": " ".join([FILLER]*(2 + k) + [MARK[a]] + [FILLER]*3 + ([MARK[b]] if b else [])), "labels": sorted({a, b} - {None})}
            for a in MARK for b in (*MARK, None) for k in range(3)]
    f = write(tmp_path/"sets.jsonl", rows)
    runs = tmp_path/"runs"
    assert main([str(f), *quick(base, runs), "--label-field", "labels", "--max-length", "32", "--long-texts", "chunks"]) == 0
    (run_dir,) = runs.iterdir()
    model = run_dir/"model"
    config = json.loads((model/"config.json").read_text())
    assert set(config["finetune_nb_thresholds"]) == set(MARK)
    clf = Classifier(str(model))
    recs = [json.loads(l) for l in (run_dir/"eval"/"predictions.jsonl").read_text().splitlines()]
    clf.predict([r["text"] for r in recs], keep_probs=True)
    assert [r["predicted"] for r in recs] == [sorted(s) for s in clf.sets] and all(r["chunks"] > 1 for r in recs)
    assert [r["chunks"] for r in recs] == clf.chunks.tolist()


def test_bad_long_text_settings_exit_2_before_any_work(long_run, base, tmp_path, capsys):
    f = documents(tmp_path/"docs.jsonl", n=2)
    model = json.loads((long_run/"run.json").read_text())["artefacts"]["model"]["local"]
    cases = [
        ([str(f), "--long-texts", "sliding"], "--long-texts must be one of ('truncate', 'head-tail', 'chunks'), got 'sliding'"),
        ([str(f), "--pool", "median"], "--pool must be one of ('mean', 'max'), got 'median'"),
        ([str(f), "--max-chunks", "-2"], "--max-chunks must be >= 0 (0: no cap), got -2"),
        ([str(f), "--stride", "-3"], "--stride must be -1 (a quarter of the window) or a number of tokens >= 0, got -3"),
        (["--model", model, "--examples", str(f), "--long-texts", "window"], "--long-texts must be one of"),
        ([str(f), "--chunk-loss", "document"], "--chunk-loss must be one of ('chunk', 'text'), got 'document'"),
        ([str(f), "--chunk-loss", "text", "--long-texts", "head-tail"], "--chunk-loss 'text' pools a text's chunks: it needs --long-texts 'chunks', got 'head-tail'"),
    ]
    assert len(cases) == BAD_INPUTS
    for k, (argv, says) in enumerate(cases):
        runs = tmp_path/f"runs{k}"
        flags = quick(base, runs) if argv[0] != "--model" else ["--label-field", "label", "--runs-dir", str(runs), "--wandb-mode", "disabled"]
        code, _, err = run(capsys, [*argv, "--text-field", "subject", "--text-field", "body", *flags])
        assert code == 2 and says in err and nothing_written(runs), (argv, err)


def test_the_plan_says_how_long_texts_will_be_read_and_what_they_cost(base, tmp_path, capsys):
    from transformers import AutoTokenizer
    f = documents(tmp_path/"docs.jsonl", n=4)
    rows = [json.loads(l) for l in f.read_text().splitlines()]
    e = encode_texts(AutoTokenizer.from_pretrained(str(base)), [(r["subject"], r["body"]) for r in rows], 40, "chunks", -1, 16)
    code, out, err = run(capsys, [str(f), *quick(base, tmp_path/"runs"), "--text-field", "subject", "--text-field", "body",
                                  "--max-length", "40", "--dry-run"])
    said = out + err
    assert code == 0 and f"{int(e.truncated.sum())} of its {len(rows)} texts" in said
    assert "the run reads each in overlapping 40-token chunks (long_texts='chunks')" in said
    assert f"{len(e.input_ids)/len(rows):.2f} model inputs a text" in said
    code, out, err = run(capsys, [str(f), *quick(base, tmp_path/"runs2"), "--text-field", "subject", "--text-field", "body",
                                  "--max-length", "40", "--long-texts", "head-tail", "--dry-run"])
    assert code == 0 and "keeps each one's first quarter and last three quarters of 40 tokens (long_texts='head-tail')" in out + err


def test_the_plan_of_examples_says_how_the_model_will_read_them(long_run, tmp_path, capsys):
    "`--model M --examples FILE`: counted with the model's own tokenizer at its window, read by its handling (or the one given)."
    record = json.loads((long_run/"run.json").read_text())
    model = record["artefacts"]["model"]["local"]
    f = documents(tmp_path/"new.jsonl", n=3)
    flags = ["--label-field", "label", "--wandb-mode", "disabled", "--dry-run"]
    code, out, err = run(capsys, ["--model", model, "--examples", str(f), "--runs-dir", str(tmp_path/"a"), *flags])
    assert code == 0 and "are longer than the 48-token window" in out + err
    assert "the run reads each in overlapping 48-token chunks (long_texts='chunks')" in out + err and "max_chunks=5" in out + err
    code, out, err = run(capsys, ["--model", model, "--examples", str(f), "--long-texts", "truncate", "--runs-dir", str(tmp_path/"b"), *flags])
    assert code == 0 and "the run cuts each at 48 tokens and keeps the head (long_texts='truncate')" in out + err


def test_long_texts_run_the_same_under_papermill(base, tmp_path, long_run):
    runs = tmp_path/"runs"
    f = documents(tmp_path/"docs.jsonl")
    assert main([str(f), *quick(base, runs), "--text-field", "subject", "--text-field", "body", "--max-length", "48",
                 "--long-texts", "chunks", "--max-chunks", "5", "--label-issue-folds", "2", "--temperature-scaling",
                 "--engine", "papermill"]) == 0
    (run_dir,) = runs.iterdir()
    record = json.loads((run_dir/"run.json").read_text())
    config = json.loads((Path(record["artefacts"]["model"]["local"])/"config.json").read_text())
    assert config["finetune_nb_long_texts"]["handling"] == "chunks" and config["finetune_nb_long_texts"]["max_chunks"] == 5
    python = [json.loads(l) for l in (long_run/"eval"/"predictions.jsonl").read_text().splitlines()]
    recs = [json.loads(l) for l in Path(record["artefacts"]["predictions"]).read_text().splitlines()]
    assert [r["chunks"] for r in recs] == [r["chunks"] for r in python]


@pytest.mark.skipif(not SHARED.exists(), reason="needs ../shared/data/banking77 beside the checkout")
def test_the_long_sample_rebuilds_byte_for_byte_from_banking77(tmp_path):
    subprocess.run([sys.executable, str(ROOT/"scripts/make_long_sample.py"), str(SHARED/"train.jsonl"), str(tmp_path)],
                   check=True, capture_output=True, cwd=ROOT/"scripts")
    for name in ("banking77_long.jsonl", "banking77_long.anomalies.json"):
        assert (tmp_path/name).read_bytes() == sample_data(name).read_bytes(), name
