"""Multi-label data (issue 23): a label field holding JSON lists, through the steps, with the promises of single labels:
every line accounted for, every problem of the new shape reported before the work (exit 2, nothing written), every
number meaning what its name says. Cleaning is checked against brute-force references of its documented rules."""
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from conftest import TOPICS, WORDS, nothing_written, quick, run, write
from finetune_nb.clean import CleanSettings, balance, clean, drop_duplicates, normalize_text, split
from finetune_nb.core import sample_data
from finetune_nb.data import load_clean_dataset
from finetune_nb.labelsets import MIN_BOTH, tune_thresholds
from finetune_nb.orchestrate import main

SAMPLE, SAMPLE_FIELD = "banking77_multilabel.jsonl", "topics"


def set_rows(n=12):
    "Tickets raising one or two of three topics, and some raising none."
    out = []
    for k, w in enumerate(WORDS[:n]):
        topics = [["card"], ["card", "pin"], ["pin"], ["loan", "pin"], []][k % 5]
        text = " and ".join(TOPICS[t].format(w) for t in topics) or f"what time do you open on {w} day"
        out.append({"text": text, "label": topics})
    return out


# --- bad inputs of the new shape: refused before any work, naming file, line and field ----------------------------

@pytest.mark.parametrize("item, says", [
    (["love"], "item 2 of the label list is a list ([\"love\"])"),
    ({"name": "love"}, "item 2 of the label list is an object"),
    (None, "item 2 of the label list is null"),
    (True, "item 2 of the label list is a boolean"),
    (1.5, "item 2 of the label list is a non-integral number"),
    ("", "item 2 of the label list is an empty string"),
])
def test_a_label_list_holding_what_is_no_label_is_refused_naming_file_line_and_field(base, tmp_path, capsys, item, says):
    rows = set_rows()
    rows[6]["label"] = ["pin", item]
    data = write(tmp_path/"sets.jsonl", rows)
    for steps in ([], ["--stop-after", "clean"], ["--dry-run"]):
        code, _, err = run(capsys, [str(data), *quick(base, tmp_path/"runs"), *steps])
        assert code == 2 and f"sets.jsonl: line 7, --label-field 'label': {says}" in err, err
        assert nothing_written(tmp_path/"runs")


def test_label_sets_are_planned_and_cleaned_by_the_command(base, tmp_path, capsys):
    rows = set_rows() + [dict(set_rows()[1]), {"text": "a plain string label for my card", "label": "card"}]
    data = write(tmp_path/"sets.jsonl", rows)
    code, out, err = run(capsys, [str(data), *quick(base, tmp_path/"runs"), "--dry-run"])
    assert code == 0 and nothing_written(tmp_path/"runs")
    assert ("sets.jsonl: multi-label (a label list in 13 of its 14 rows, a plain string in 1, each read as a one-label set): "
            "3 labels, 1.31 labels a list on average (at most 2), 2 lists empty (none of these labels); rows per label: "
            "'card' (8), 'pin' (8), 'loan' (2)") in out + err
    code, out, err = run(capsys, [str(data), *quick(base, tmp_path/"runs"), "--stop-after", "clean", "--name", "sets"])
    assert code == 0, err
    (run_dir,) = (tmp_path/"runs").iterdir()
    record = json.loads((run_dir/"run.json").read_text())
    assert record["status"] == "done" and record["problem_type"] == "multi_label_classification"
    data_ = record["results"]["data"]
    assert data_["strings_as_sets"] == 1 and data_["dropped"] == {"exact_duplicate": 1}
    assert data_["splits"]["train"] + data_["splits"]["test"] == 13
    ds = load_clean_dataset(record["artefacts"]["dataset"]["local"])
    back = {r["id"]: tuple(r["label"]) for split_ in ("train", "test") for r in ds[split_]}
    want = {i: tuple(sorted(r["label"] if isinstance(r["label"], list) else [r["label"]])) for i, r in enumerate(rows, 1) if i != 13}
    assert back == want  # line 13 copies line 2; every other line is a row with its set, sorted
    card = (Path(record["artefacts"]["dataset"]["local"])/"README.md").read_text()
    assert "multi-label-classification" in card and "Each row carries a **label set**" in card
    assert "**Multi-label**" in (run_dir/"summary.md").read_text()


# --- cleaning label sets, against brute-force references of the documented rules ------------------------------------

label_set = st.lists(st.sampled_from("abcd"), max_size=3).map(lambda x: tuple(sorted(set(x))))
texts = st.sampled_from(["lost card", "Lost  CARD", "new pin", "pin change", "top up", "TOP UP", "fees", "refund"])


@settings(max_examples=150, deadline=None, database=None)
@given(st.lists(st.tuples(texts, label_set), min_size=1, max_size=30), st.sampled_from(["drop", "majority"]))
def test_copies_with_label_sets_resolve_as_documented(rows, noise):
    df = pd.DataFrame({"id": np.arange(1, len(rows) + 1), "text": [t for t, _ in rows],
                       "label": pd.Series([s for _, s in rows], dtype=object)})
    kept, ledger = drop_duplicates(df, threshold=None, noise=noise)
    groups: dict[str, list[int]] = {}
    for i, (t, _) in enumerate(rows): groups.setdefault(normalize_text(t), []).append(i)
    want = {}
    for members in groups.values():
        sets = [rows[i][1] for i in members]
        if len(set(sets)) == 1: want[members[0] + 1] = sets[0]; continue
        if noise == "drop": continue  # the whole group dropped
        count = Counter(l for s_ in sets for l in s_)  # majority: each label more than half of the copies carry ...
        m = tuple(sorted(l for l, c in count.items() if c > len(sets)/2))
        if not m and sum(not s_ for s_ in sets) <= len(sets)/2: continue  # ... a tie unless most copies are empty: dropped
        keep = next((i for i in members if rows[i][1] == m), members[0])
        want[keep + 1] = m
    assert dict(zip(kept["id"], kept["label"])) == want
    assert sorted([*kept["id"], *(e["line"] for e in ledger)]) == list(range(1, len(rows) + 1))
    for e in ledger:
        assert e["reason"] in {"exact_duplicate", "conflicting_labels", "minority_label", "label_tie"}
        if e["reason"] in ("exact_duplicate", "minority_label"): assert e["duplicate_of"] in want


@settings(max_examples=100, deadline=None, database=None)
@given(st.lists(label_set, min_size=1, max_size=60), st.integers(2, 8), st.integers(0, 2**16))
def test_the_cap_per_label_holds_and_drops_a_row_only_for_a_full_label(sets, cap, seed):
    df = pd.DataFrame({"id": np.arange(1, len(sets) + 1), "text": [f"t{i}" for i in range(len(sets))],
                       "label": pd.Series(sets, dtype=object)})
    kept, ledger = balance(df, max_per_label=cap, seed=seed)
    count = Counter(k for s in kept["label"] for k in (s or ("(none)",)))
    assert max(count.values()) <= cap
    for e in ledger:  # greedy: a row is dropped only when a label it carries (or the empty set) is already at the cap
        assert e["reason"] == "downsampled" and any(count[k] == cap for k in (e["label"] or ("(none)",)))
    assert sorted([*kept["id"], *(e["line"] for e in ledger)]) == list(range(1, len(sets) + 1))


@settings(max_examples=60, deadline=None, database=None)
@given(st.lists(st.lists(st.sampled_from("abcdefgh"), max_size=4).map(lambda x: tuple(sorted(set(x)))), min_size=2, max_size=120),
       st.sampled_from([0.2, 0.3, 0.5]), st.integers(0, 2**16))
def test_the_split_puts_every_label_of_five_rows_in_both_and_none_in_test_only(sets, test_size, seed):
    df = pd.DataFrame({"id": np.arange(1, len(sets) + 1), "text": [f"t{i}" for i in range(len(sets))],
                       "label": pd.Series(sets, dtype=object)})
    tr, te, ledger = split(df, test_size, seed)
    assert ledger == [] and sorted([*tr["id"], *te["id"]]) == list(range(1, len(sets) + 1))
    a, b = Counter(l for s in tr["label"] for l in s), Counter(l for s in te["label"] for l in s)
    assert not set(b) - set(a)  # a model cannot learn a label it never saw
    assert all(b[l] > 0 and a[l] > 0 for l in a | b if a[l] + b[l] >= MIN_BOTH)


ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent/"shared"/"data"/"banking77"


@pytest.mark.skipif(not SHARED.exists(), reason="needs ../shared/data/banking77 beside the checkout")
def test_the_multilabel_sample_rebuilds_byte_for_byte_from_banking77(tmp_path):
    import subprocess, sys
    subprocess.run([sys.executable, str(ROOT/"scripts/make_multilabel_sample.py"), str(SHARED/"train.jsonl"), str(tmp_path)],
                   check=True, capture_output=True)
    for name in (SAMPLE, "banking77_multilabel.anomalies.json"):
        assert (tmp_path/name).read_bytes() == sample_data(name).read_bytes(), name


def test_the_bundled_multilabel_sample_is_what_its_anomalies_say():
    res = clean(CleanSettings(input_path=str(sample_data(SAMPLE)), label_field=SAMPLE_FIELD))  # noise='drop'
    anomalies = json.loads(sample_data("banking77_multilabel.anomalies.json").read_text())
    kinds = Counter(a["kind"] for a in anomalies)
    dropped = Counter(res.ledger["reason"])
    assert dropped["exact_duplicate"] == kinds["exact_duplicate"] and dropped["near_duplicate"] == kinds["near_duplicate"]
    assert dropped["conflicting_labels"] == 2*kinds["conflicting_topics"]  # noise='drop': both copies
    for k in ("bad_json", "empty_text", "missing_label", "blank_line"): assert dropped[k] == kinds[k]
    assert res.stats["label_sets"]["strings_as_sets"] == kinds["string_label"]
    line = next(a["line"] for a in anomalies if a["kind"] == "repeated_topic")
    given_ = json.loads(sample_data(SAMPLE).read_text(encoding="utf-8").splitlines()[line - 1])[SAMPLE_FIELD]
    row = pd.concat([res.train, res.test]).set_index("id").loc[line]
    assert len(given_) > len(set(given_)) and row["label"] == tuple(sorted(set(given_)))  # a topic named twice counts once
    assert set(res.stats["split"]["labels"]) == set(res.stats["labels"]) and not res.stats["split"]["test_only"]


# --- the whole pipeline on label sets: both engines, then --model --examples ----------------------------------------

@pytest.fixture(scope="module")
def multilabel_run(base, tmp_path_factory):
    "The bundled multi-label sample through `finetune-nb` (python engine): clean, train, evaluate."
    runs = tmp_path_factory.mktemp("ml")/"runs"
    code = main([str(sample_data(SAMPLE)), *quick(base, runs), "--label-field", SAMPLE_FIELD, "--near-dup-threshold", "0.8",
                 "--name", "ml", "--class-weights", "balanced"])
    assert code == 0
    (run_dir,) = runs.iterdir()
    return run_dir


def test_label_sets_run_through_every_step_with_every_line_accounted_for(multilabel_run):
    record = json.loads((multilabel_run/"run.json").read_text())
    assert record["status"] == "done" and record["problem_type"] == "multi_label_classification"
    data = record["results"]["data"]
    assert sum(data["splits"].values()) + sum(data["dropped"].values()) == data["lines"] == 411
    model = Path(record["artefacts"]["model"]["local"])
    config = json.loads((model/"config.json").read_text())
    assert config["problem_type"] == "multi_label_classification"
    assert set(config["finetune_nb_thresholds"]) == set(config["id2label"].values())  # tuned on validation, published with it
    metrics = json.loads(Path(record["artefacts"]["metrics"]).read_text())
    f = metrics["fine_tuned"]
    assert metrics["problem_type"] == "multi_label_classification" and metrics["labelled"] == data["splits"]["test"]
    recs = [json.loads(l) for l in Path(record["artefacts"]["predictions"]).read_text().splitlines()]
    assert len(recs) == data["splits"]["test"]
    th = config["finetune_nb_thresholds"]
    probs = {r["id"]: r["probs"] for r in map(json.loads, Path(record["artefacts"]["predictions"]).with_name("predictions.probs.jsonl")
                                              .read_text().splitlines())}
    labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    for r in recs:  # the predicted set is every label at or over its threshold, from the scores kept beside the records
        assert r["predicted"] == sorted(l for l, p in zip(labels, probs[r["id"]]) if p >= th[l] - 5e-7), r
        assert r["exact"] == int(set(r["predicted"]) == set(r["label"]))
        assert r["missing"] == sorted(set(r["label"]) - set(r["predicted"])) and r["extra"] == sorted(set(r["predicted"]) - set(r["label"]))
    assert f["subset_accuracy"] == pytest.approx(np.mean([r["exact"] for r in recs]))
    assert f["precision@1"] == pytest.approx(np.mean([r["top_labels"][0] in r["label"] for r in recs]))
    assert set(f["per_label"]) == set(labels) and all(f["per_label"][l]["threshold"] == pytest.approx(th[l]) for l in labels)
    assert sum(f["per_label"][l]["support"] for l in labels) == sum(len(r["label"]) for r in recs)
    for png in ("per_label_png", "reliability_diagram"): assert Path(metrics[png]).read_bytes()[:4] == b"\x89PNG"
    issues = [json.loads(l) for l in Path(metrics["label_issues"]["file"]).read_text().splitlines()]
    assert len(issues) == metrics["label_issues"]["rows"]
    for i in issues:  # the labels that look missing score at or over their threshold; those that look wrong under it
        assert all(probs[i["id"]][labels.index(l)] >= th[l] - 5e-7 and l not in i["label"] for l in i["looks_missing"])
        assert all(probs[i["id"]][labels.index(l)] < th[l] + 5e-7 and l in i["label"] for l in i["looks_wrong"])
    summary = (multilabel_run/"summary.md").read_text()
    assert "| metrics (label sets) |" in summary and "**Multi-label**" in summary
    assert "| TF-IDF + LR baseline (thresholds tuned on validation) |" in summary
    card = (model/"README.md").read_text()
    assert "Subset accuracy" in card and "Precision@1" in card  # the test metrics, in the model-index too
    assert card.count("| TF-IDF + LR baseline |") == 1


def test_the_label_set_baseline_is_one_vs_rest_with_thresholds_tuned_on_the_models_validation_rows(multilabel_run):
    "Refitted by hand from training_rows.json: the documented one-vs-rest model with the model's class weights, thresholds from the validation rows, scored on the test rows."
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    record = json.loads((multilabel_run/"run.json").read_text())
    model = Path(record["artefacts"]["model"]["local"])
    metrics = json.loads(Path(record["artefacts"]["metrics"]).read_text())
    b, used = metrics["baseline"], json.loads((model/"training_rows.json").read_text())
    assert b["fitted_on"] == {"train": len(used["train"]), "validation": len(used["validation"])} and len(used["validation"])
    train = load_clean_dataset(used["dataset"])["train"].to_pandas().set_index("id")
    labels = [l for _, l in sorted(json.loads((model/"config.json").read_text())["id2label"].items(), key=lambda kv: int(kv[0]))]
    Y = lambda sets: np.array([[l in s for l in labels] for s in sets], dtype=int)
    assert b["class_weights"] == "balanced"  # as the model was trained (--class-weights balanced): equal settings
    pipe = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, strip_accents="unicode"),
                         OneVsRestClassifier(LogisticRegression(C=4.0, solver="liblinear", class_weight="balanced")))
    pipe.fit(train.loc[used["train"], "text"].tolist(), Y(train.loc[used["train"], "label"]))
    th = tune_thresholds(Y(train.loc[used["validation"], "label"]), pipe.predict_proba(train.loc[used["validation"], "text"].tolist()))
    assert [b["per_label"][l]["threshold"] for l in labels] == pytest.approx(th.tolist())
    recs = [json.loads(l) for l in Path(record["artefacts"]["predictions"]).read_text().splitlines()]  # the model's test rows
    pred = pipe.predict_proba([r["text"] for r in recs]) >= th
    assert b["macro_f1"] == pytest.approx(f1_score(Y([r["label"] for r in recs]), pred, average="macro", zero_division=0))
    assert b["subset_accuracy"] == pytest.approx(np.mean([(Y([r["label"]])[0] == p).all() for r, p in zip(recs, pred)]))


def test_label_sets_run_the_same_under_papermill(base, tmp_path, multilabel_run):
    runs = tmp_path/"runs"
    code = main([str(sample_data(SAMPLE)), *quick(base, runs), "--label-field", SAMPLE_FIELD, "--near-dup-threshold", "0.8",
                 "--name", "ml", "--class-weights", "balanced", "--engine", "papermill"])
    assert code == 0
    (run_dir,) = runs.iterdir()
    record, python_run = json.loads((run_dir/"run.json").read_text()), json.loads((multilabel_run/"run.json").read_text())
    assert record["status"] == "done" and record["problem_type"] == "multi_label_classification"
    assert record["results"]["data"] == python_run["results"]["data"]  # the same cleaning, whichever engine runs the notebooks
    assert (run_dir/"notebooks"/"03_eval.ipynb").is_file() or any(run_dir.rglob("03_eval*.ipynb"))


def test_examples_of_the_other_shape_are_refused_before_any_work(base, tmp_path, capsys, multilabel_run):
    model = json.loads((multilabel_run/"run.json").read_text())["artefacts"]["model"]["local"]
    strings = write(tmp_path/"strings.jsonl", [{"text": "where is my card", "label": "card_arrival"}])
    code, _, err = run(capsys, ["--model", model, "--examples", str(strings), "--label-field", "label", "--runs-dir", str(tmp_path/"runs"),
                                "--wandb-mode", "disabled"])
    assert code == 2 and "carries single labels (strings)" in err and "is multi-label" in err and nothing_written(tmp_path/"runs")
    sets = write(tmp_path/"sets.jsonl", [{"text": "where is my card", "label": ["card_arrival"]}, {"text": "hello", "label": []}])
    code, _, err = run(capsys, ["--model", model, "--examples", str(sets), "--label-field", "label", "--runs-dir", str(tmp_path/"runs"),
                                "--wandb-mode", "disabled"])
    assert code == 0, err
    metrics = json.loads(next((tmp_path/"runs").rglob("metrics.json")).read_text())
    assert metrics["labelled"] == 2 and "subset_accuracy" in metrics["fine_tuned"]
    code, _, err = run(capsys, ["--model", str(base), "--examples", str(sets), "--label-field", "label", "--runs-dir", str(tmp_path/"runs2"),
                                "--wandb-mode", "disabled"])  # the tiny base: a single-label model
    assert code == 2 and "carries label sets (lists)" in err and "is single-label" in err and nothing_written(tmp_path/"runs2")
