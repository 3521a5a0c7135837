"Several text fields (issue 24): a subject and a body through `finetune-nb`, and every bad input of that shape refused before any work."
import json
from pathlib import Path

import pytest
import yaml

from conftest import TOPICS, WORDS, nothing_written, quick, run, write
from finetune_nb.data import load_clean_dataset, split_frame
from finetune_nb.orchestrate import main

SUBJECTS = {"card": "Delivery", "pin": "Security", "loan": "Borrowing"}
BAD_INPUTS = 6  # kinds of bad input of several fields, each refused before any work (nbs/reliability.md states it)


def tickets(path: Path) -> Path:
    "Tickets with a `subject` and a `body` (the body says the topic), a copy with another subject, one without a subject."
    rows = [{"subject": f"{SUBJECTS[lab]} {w}", "body": t.format(w), "label": lab} for lab, t in TOPICS.items() for w in WORDS]
    rows += [{"subject": "Other", "body": TOPICS["card"].format("alpha"), "label": "card"},  # line 37: the same body, another subject
             {"body": TOPICS["pin"].format("zulu"), "label": "pin"},  # line 38: no subject at all: an empty text in that field
             {"subject": "Delivery alpha", "body": TOPICS["card"].format("alpha"), "label": "card"}]  # line 39: a copy of line 1
    return write(path, rows)


@pytest.fixture(scope="module")
def fields_run(base, tmp_path_factory):
    "One two-field run of `finetune-nb` (python engine), its folder."
    runs = tmp_path_factory.mktemp("fields")/"runs"
    f = tickets(runs.parent/"tickets.jsonl")
    assert main([str(f), *quick(base, runs), "--text-field", "subject", "--text-field", "body", "--name", "tickets"]) == 0
    (run_dir,) = runs.iterdir()
    return run_dir


def test_two_fields_reach_the_model_as_a_pair_through_every_step(fields_run):
    record = json.loads((fields_run/"run.json").read_text())
    assert record["status"] == "done" and record["settings"]["text_field"] == ["subject", "body"]
    data = record["results"]["data"]
    assert sum(data["splits"].values()) + sum(data["dropped"].values()) == data["lines"] == 39  # every line accounted for
    ledger = {e["line"]: e for e in map(json.loads, (fields_run/"dataset"/"dropped.jsonl").read_text().splitlines())}
    assert ledger[39]["reason"] == "exact_duplicate" and ledger[39]["duplicate_of"] == 1  # the whole input: subject and body
    assert ledger[39]["text"] == {"subject": "Delivery alpha", "body": TOPICS["card"].format("alpha")}
    ds = load_clean_dataset(fields_run/"dataset")
    assert ds["train"].column_names == ["id", "subject", "body", "label"]
    rows = {r["id"]: r for s in ("train", "test") for r in ds[s]}
    assert 37 in rows and 38 in rows  # the same body under another subject is no copy (nor near, at threshold 1.0); no subject is a row
    assert rows[38]["subject"] == "" and rows[37]["subject"] == "Other"
    stats = json.loads((fields_run/"dataset"/"stats.json").read_text())
    assert stats["text_fields"]["fields"] == ["subject", "body"]
    assert sum(v["subject"] for v in stats["text_fields"]["empty"].values()) == 1  # line 38
    card = (fields_run/"dataset"/"README.md").read_text()
    assert "text from 2 fields" in card and "`subject`, `body`" in card
    model = Path(record["artefacts"]["model"]["local"])
    config = json.loads((model/"config.json").read_text())
    assert config["finetune_nb_text_fields"] == ["subject", "body"]
    assert "reads 2 text fields" in (model/"README.md").read_text()
    recs = [json.loads(l) for l in Path(record["artefacts"]["predictions"]).read_text().splitlines()]
    test = {r["id"]: r for r in ds["test"]}
    assert len(recs) == len(test) and all(r["text"] == {"subject": test[r["id"]]["subject"], "body": test[r["id"]]["body"]} for r in recs)
    metrics = json.loads(Path(record["artefacts"]["metrics"]).read_text())
    assert metrics["text_fields"] == ["subject", "body"] and "macro_f1" in metrics["baseline"]
    assert "--text-field subject --text-field body" in (fields_run/"summary.md").read_text()  # the next command reads the same fields


def test_the_model_reads_examples_from_its_fields_or_from_as_many_named(fields_run, tmp_path, capsys):
    record = json.loads((fields_run/"run.json").read_text())
    model = record["artefacts"]["model"]["local"]
    recs = [json.loads(l) for l in Path(record["artefacts"]["predictions"]).read_text().splitlines()]
    same = write(tmp_path/"same.jsonl", [{**r["text"], "label": r["label"]} for r in recs])
    other = write(tmp_path/"other.jsonl", [{"title": r["text"]["subject"], "description": r["text"]["body"], "label": r["label"]} for r in recs])
    scores = []
    for f, extra in ((same, []), (other, ["--text-field", "title", "--text-field", "description"])):
        runs = tmp_path/f"runs-{f.stem}"
        code, _, err = run(capsys, ["--model", model, "--examples", str(f), "--label-field", "label", "--runs-dir", str(runs),
                                    "--wandb-mode", "disabled", *extra])
        assert code == 0, err
        scores.append([json.loads(l)["top_scores"] for l in next(runs.rglob("predictions.jsonl")).read_text().splitlines()])
    assert scores[0] == scores[1] == [r["top_scores"] for r in recs]  # encoded as in training, whatever the fields are called


def test_bad_inputs_of_several_fields_exit_2_with_nothing_written(fields_run, base, tmp_path, capsys):
    f = tickets(tmp_path/"tickets.jsonl")
    model = json.loads((fields_run/"run.json").read_text())["artefacts"]["model"]["local"]
    lacking = write(tmp_path/"lacking.jsonl", [{"subject": "Delivery", "label": "card"}])  # no body in any line
    cases = [
        ([str(f), "--text-field", "subject", "--text-field", "summary"], "'summary' is in none of its 39 JSON objects"),
        ([str(f), "--text-field", "body", "--text-field", "body"], "names ['body'] twice"),
        ([str(f), "--text-field", "subject", "--text-field", "label"], "both name 'label'"),
        (["--model", model, "--examples", str(lacking)], "'body' is in none of its 1 JSON objects"),
        (["--model", model, "--examples", str(f), "--text-field", "body"], "the model reads 2 text fields (subject, body, in that order)"),
        (["--model", str(base), "--examples", str(f), "--text-field", "subject", "--text-field", "body"], "the model reads one text field"),
    ]
    assert len(cases) == BAD_INPUTS
    for k, (argv, says) in enumerate(cases):
        runs = tmp_path/f"runs{k}"
        flags = quick(base, runs) if argv[0] != "--model" else ["--label-field", "label", "--runs-dir", str(runs), "--wandb-mode", "disabled"]
        code, _, err = run(capsys, [*argv, *flags])
        assert code == 2 and says in err and nothing_written(runs), (argv, err)


def test_several_fields_come_from_a_config_file_too(base, tmp_path, capsys):
    f = tickets(tmp_path/"tickets.jsonl")
    cfg = tmp_path/"run.yaml"
    cfg.write_text(yaml.safe_dump({"text_field": ["subject", "body"], "stop_after": "clean"}))
    runs = tmp_path/"runs"
    code, _, err = run(capsys, [str(f), "--config", str(cfg), *quick(base, runs)])
    assert code == 0, err
    ds = load_clean_dataset(next(runs.iterdir())/"dataset")
    df, fields = split_frame(ds["train"])
    assert fields == ["subject", "body"] and all(isinstance(t, tuple) and len(t) == 2 for t in df["text"])
    code, out, err = run(capsys, [str(f), "--config", str(cfg), *quick(base, tmp_path/"dry"), "--dry-run"])
    assert code == 0 and "2 text fields, read in this order: subject, body (a text pair" in out + err
    cfg.write_text(yaml.safe_dump({"text_field": ["subject", 3]}))
    code, _, err = run(capsys, [str(f), "--config", str(cfg), *quick(base, tmp_path/"runs2")])
    assert code == 2 and "text_field must be a string or a list of strings" in err and nothing_written(tmp_path/"runs2")


def test_two_fields_run_the_same_under_papermill(base, tmp_path, fields_run):
    runs = tmp_path/"runs"
    f = tickets(tmp_path/"tickets.jsonl")
    assert main([str(f), *quick(base, runs), "--text-field", "subject", "--text-field", "body", "--name", "tickets", "--engine", "papermill"]) == 0
    (run_dir,) = runs.iterdir()
    record, python_run = json.loads((run_dir/"run.json").read_text()), json.loads((fields_run/"run.json").read_text())
    assert record["status"] == "done" and record["results"]["data"] == python_run["results"]["data"]
    config = json.loads((Path(record["artefacts"]["model"]["local"])/"config.json").read_text())
    assert config["finetune_nb_text_fields"] == ["subject", "body"]  # the notebooks got the list as a parameter
    recs = [json.loads(l) for l in Path(record["artefacts"]["predictions"]).read_text().splitlines()]
    assert recs and all(set(r["text"]) == {"subject", "body"} for r in recs)


def test_the_plan_says_how_many_texts_exceed_the_window(base, tmp_path, capsys):
    "Counted with the base model's tokenizer on the texts as the model will read them (a subject and body: the pair)."
    from transformers import AutoTokenizer
    f = tickets(tmp_path/"tickets.jsonl")
    rows = [json.loads(l) for l in f.read_text().splitlines()]
    tok = AutoTokenizer.from_pretrained(str(base))
    n = [len(x) for x in tok([r.get("subject") or "" for r in rows], [r["body"] for r in rows])["input_ids"]]
    window = sorted(n)[len(n)//2]  # about half the texts are longer
    over = sum(k > window for k in n)
    assert 0 < over < len(n)
    code, out, err = run(capsys, [str(f), *quick(base, tmp_path/"runs"), "--text-field", "subject", "--text-field", "body",
                                  "--max-length", str(window), "--dry-run"])
    assert code == 0 and f"tickets.jsonl: {over} of its {len(n)} texts ({over/len(n):.1%}) are longer than the {window}-token window" in out + err
