"""Fail first, fail clearly: every problem that can be known before the work is reported before it, through the real
entry points (`finetune-nb`, papermill), with exit code 2 and nothing written; what fails during the work says so once."""
import gzip, json, os, re, shutil, subprocess, sys
from pathlib import Path

import pytest

from conftest import NBS, TOPICS, WORDS, nothing_written, quick, run, write
from finetune_nb.data import scan_jsonl
from finetune_nb.orchestrate import main

FINETUNE_NB = str(Path(sys.executable).parent/"finetune-nb")


def topic_rows(labels=("card", "pin", "loan"), n=12):
    return [{"text": TOPICS[lab].format(w), "label": lab} for lab in labels for w in WORDS[:n]]


# --- the table of issue 12, row by row --------------------------------------------------------------

def test_one_label_is_refused_before_any_work(base, tmp_path, capsys):
    data = write(tmp_path/"one.jsonl", topic_rows(("card",)))
    code, _, err = run(capsys, [str(data), *quick(base, tmp_path/"runs")])
    assert code == 2 and "one.jsonl: training needs at least 2 labels with 2 rows or more, and has 'card' (12)" in err
    assert "--label-field, --labels-include, --labels-exclude and --min-per-label" in err and nothing_written(tmp_path/"runs")


def test_two_rows_per_label_is_refused_before_any_work(base, tmp_path, capsys):
    data = write(tmp_path/"two.jsonl", topic_rows(n=2))
    code, _, err = run(capsys, [str(data), *quick(base, tmp_path/"runs")])
    assert code == 2 and "two.jsonl: no label has the 3 rows training needs" in err and "'card' (2)" in err
    assert "--stop-after clean" in err and nothing_written(tmp_path/"runs")


def test_integral_float_labels_are_labels(base, tmp_path, capsys):
    "pandas writes an integer column with gaps as 2.0: those are labels '2', and the run goes through."
    rows = [{"text": r["text"], "label": float(("card", "pin", "loan").index(r["label"]))} for r in topic_rows()]
    code, out, err = run(capsys, [str(write(tmp_path/"floats.jsonl", rows)), *quick(base, tmp_path/"runs"), "--stop-after", "clean"])
    assert code == 0, err
    (run_dir,) = (tmp_path/"runs").iterdir()
    stats = json.loads((run_dir/"dataset"/"stats.json").read_text())
    assert sorted(stats["labels"]) == ["0", "1", "2"] and stats["splits"]["train"] + stats["splits"]["test"] == 36


def test_numeric_texts_are_refused_naming_the_reasons(base, tmp_path, capsys):
    rows = [{"text": 1000 + i, "label": lab} for i, lab in enumerate(["a", "b"]*10)] + [{"text": "only one", "label": 1.5}]
    code, _, err = run(capsys, [str(write(tmp_path/"numbers.jsonl", rows)), *quick(base, tmp_path/"runs")])
    assert code == 2 and "none of its 21 lines would be a row (text_not_a_string 20, label_not_a_string 1)" in err
    assert nothing_written(tmp_path/"runs")


def test_a_clean_that_drops_everything_keeps_its_ledger_and_names_the_reasons(base, tmp_path, capsys):
    "Every text twice with two labels: only the cleaning can find that out; its ledger and stats stay in the run folder."
    rows = [{"text": f"text number {w}", "label": lab} for w in WORDS for lab in ("a", "b")]
    code, _, err = run(capsys, [str(write(tmp_path/"conflict.jsonl", rows)), *quick(base, tmp_path/"runs")])
    assert code == 1 and "no rows left to split: all 24 lines of conflict.jsonl were dropped (conflicting_labels 24)" in err
    (run_dir,) = (tmp_path/"runs").iterdir()
    failed = run_dir/"dataset.failed"
    assert len((failed/"dropped.jsonl").read_text().splitlines()) == 24 and json.loads((failed/"stats.json").read_text())["dropped"] == {"conflicting_labels": 24}
    assert str(failed) in err and err.count("no rows left to split") == 1  # said once
    assert json.loads((run_dir/"run.json").read_text())["steps"]["clean"]["status"] == "failed"


def test_a_label_filter_naming_a_missing_label_is_refused(base, tmp_path, capsys):
    data = write(tmp_path/"t.jsonl", topic_rows())
    code, _, err = run(capsys, [str(data), *quick(base, tmp_path/"runs"), "--labels-exclude", "spam", "--labels-include", "cards",
                                "--labels-include", "pin"])
    assert code == 2 and "--labels-exclude names 'spam', which no row of t.jsonl carries; its labels: 'card' (12), 'loan' (12), 'pin' (12)" in err
    assert "--labels-include names 'cards', which no row of t.jsonl carries (did you mean 'card'?)" in err
    assert err.count("'card' (12)") == 1 and nothing_written(tmp_path/"runs")  # the labels once, not twice


def test_a_negative_seed_is_a_settings_error(base, tmp_path, capsys):
    code, _, err = run(capsys, [str(write(tmp_path/"t.jsonl", topic_rows())), *quick(base, tmp_path/"runs"), "--seed", "-5"])
    assert code == 2 and "--seed must be between 0 and 2**32 - 1, got -5" in err and nothing_written(tmp_path/"runs")


@pytest.mark.parametrize("kind, says", [
    ("utf16", "is UTF-16LE text, not UTF-8: convert it first (`iconv -f UTF-16LE -t UTF-8 data.jsonl > data-utf8.jsonl`)"),
    ("array", "holds one JSON array, not one JSON object per line: convert it (`jq -c '.[]' data.jsonl > data-lines.jsonl`)"),
    ("csv", "looks like CSV, not JSON Lines: convert it (`python -c \"import pandas as pd; pd.read_csv('data.jsonl'"),
    ("commas", "35 of its 36 lines are not valid JSON: it has a comma after each object, as inside a JSON array: drop them "
               "(`sed -E 's/\\},[[:space:]]*$/}/' data.jsonl > data-lines.jsonl`)"),
])
def test_files_that_are_not_json_lines_are_named_with_how_to_convert(base, tmp_path, capsys, kind, says):
    rows, f = topic_rows(), tmp_path/"data.jsonl"
    lines = "".join(json.dumps(r) + "\n" for r in rows)
    f.write_bytes({"utf16": lambda: lines.encode("utf-16"), "array": lambda: json.dumps(rows, indent=1).encode(),
                   "csv": lambda: ("text,label\n" + "".join(f"{r['text']},{r['label']}\n" for r in rows)).encode(),
                   "commas": lambda: ",\n".join(json.dumps(r) for r in rows).encode()}[kind]())  # the last object has none
    code, _, err = run(capsys, [str(f), *quick(base, tmp_path/"runs")])
    assert code == 2 and says in err and nothing_written(tmp_path/"runs")
    command = err.split("(`", 1)[1].split("`)", 1)[0]  # the command given converts the file (where its program is installed)
    if not shutil.which(command.split()[0]): pytest.skip(f"{command.split()[0]} is not installed")
    subprocess.run(command, shell=True, cwd=tmp_path, check=True, env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    (out,) = [p for p in tmp_path.glob("data-*.jsonl")]
    scan = scan_jsonl(out, "text", "label")
    assert (scan.lines, scan.rows, dict(scan.labels)) == (36, 36, {"card": 12, "pin": 12, "loan": 12})


def test_a_gzipped_file_is_read_as_it_is_and_one_cut_short_is_refused_naming_the_line(base, tmp_path, capsys):
    rows = topic_rows()
    lines = "".join(json.dumps(r) + "\n" for r in rows).encode()
    (tmp_path/"plain.jsonl").write_bytes(lines)
    (tmp_path/"tickets.jsonl.gz").write_bytes(gzip.compress(lines))
    for name in ("plain.jsonl", "tickets.jsonl.gz"):
        code, out, err = run(capsys, [str(tmp_path/name), *quick(base, tmp_path/"runs"), "--stop-after", "clean"])
        assert code == 0, err
    plain, packed = sorted((tmp_path/"runs").iterdir(), key=lambda p: p.name.endswith("tickets"))
    assert packed.name.endswith("-tickets")  # the run is named without .jsonl.gz
    stats = [json.loads((r/"dataset"/"stats.json").read_text()) for r in (plain, packed)]
    assert stats[0]["label_counts"] == stats[1]["label_counts"] and stats[1]["label_counts"]["read"] == 3
    for split in ("train", "test"):
        assert (plain/"dataset"/f"{split}.csv").read_bytes() == (packed/"dataset"/f"{split}.csv").read_bytes()
    (tmp_path/"cut.jsonl.gz").write_bytes(gzip.compress(lines)[:-20])
    code, _, err = run(capsys, [str(tmp_path/"cut.jsonl.gz"), *quick(base, tmp_path/"runs2")])
    assert code == 2 and "cut.jsonl.gz: its gzip stream is cut short or damaged after line" in err and nothing_written(tmp_path/"runs2")


def test_labels_without_test_rows_are_named_and_the_summary_counts_labels_per_split(base, tmp_path, capsys):
    rows = topic_rows() + [{"text": f"rare question {w} number {k}", "label": f"rare_{w}"} for w in WORDS for k in (1, 2)]
    code, out, err = run(capsys, [str(write(tmp_path/"t.jsonl", rows)), *quick(base, tmp_path/"runs"), "--stop-after", "clean",
                                  "--test-size", "0.1"])
    assert code == 0, err
    (run_dir,) = (tmp_path/"runs").iterdir()
    counts = json.loads((run_dir/"dataset"/"stats.json").read_text())["label_counts"]
    assert counts["read"] == counts["train"] == 15 and counts["test"] < 15 and counts["train_without_test"]
    assert f"{len(counts['train_without_test'])} labels have train rows but no test rows" in (run_dir/"run.log").read_text()
    assert f"**Labels**: 15 read, 15 in train, {counts['test']} in test" in out
    assert "`" + counts["train_without_test"][0] + "`" in out


def test_predictions_may_be_a_file_anywhere_but_not_a_folder(base, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = write(tmp_path/"t.jsonl", topic_rows())
    code, out, err = run(capsys, [str(data), *quick(base, tmp_path/"runs"), "--predictions", "preds.jsonl", "--dry-run"])
    assert code == 0 and "overlap" not in err, err
    (tmp_path/"preds").mkdir()
    code, _, err = run(capsys, [str(data), *quick(base, tmp_path/"runs"), "--predictions", "preds", "--dry-run"])
    assert code == 2 and f"--predictions {tmp_path/'preds'} is a folder: name the JSONL file to write" in err


def test_papermill_refuses_a_parameter_the_notebook_lacks(tmp_path):
    import papermill as pm
    with pytest.raises(pm.PapermillExecutionError) as e:
        pm.execute_notebook(str(NBS/"01_clean.ipynb"), str(tmp_path/"out.ipynb"), cwd=str(tmp_path), kernel_name="python3",
                            progress_bar=False, parameters=dict(input_file="x.jsonl"))
    assert "-p input_file is not a parameter of this notebook (did you mean -p input_path?)" in e.value.evalue
    assert not (tmp_path/"runs").exists()  # nothing was cleaned


def test_a_dry_run_piped_into_a_reader_that_leaves_ends_quietly(tmp_path):
    res = subprocess.run(["bash", "-c", f"set -o pipefail; {FINETUNE_NB} --dry-run --runs-dir {tmp_path} | true"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "Traceback" not in res.stderr and "BrokenPipe" not in res.stderr, res.stderr


def test_absurd_values_get_notes_not_errors(base, tmp_path, capsys):
    code, out, err = run(capsys, [str(write(tmp_path/"t.jsonl", topic_rows())), *quick(base, tmp_path/"runs"), "--dry-run",
                                  "--epochs", "1e9", "--learning-rate", "5", "--max-length", "100000", "--top-k", "1000"])
    assert code == 0, err
    for says in ("note: --epochs 1e+09: fine-tuning usually takes 2 to 10 passes", "note: --learning-rate 5: fine-tuning an encoder diverges",
                 "note: --max-length 100000: inputs are cut at 512 tokens", "note: --top-k 1000: the data has 3 labels"):
        assert says in out, (says, out)


def test_a_failure_during_the_work_is_said_once(base, tmp_path, capsys, monkeypatch):
    def boom(*a, **k): raise RuntimeError("the GPU caught fire")
    monkeypatch.setattr("transformers.Trainer.train", boom)
    code, out, err = run(capsys, [str(write(tmp_path/"t.jsonl", topic_rows())), *quick(base, tmp_path/"runs")])
    assert code == 1 and err.count("the GPU caught fire") == 1, err
    (run_dir,) = (tmp_path/"runs").iterdir()
    assert "the GPU caught fire" in (run_dir/"run.log").read_text()  # and the log has it


def test_a_finished_run_ends_with_the_next_command(base, tmp_path, capsys):
    code, out, err = run(capsys, [str(write(tmp_path/"t.jsonl", topic_rows())), *quick(base, tmp_path/"runs"), "--stop-after", "clean"])
    assert code == 0, err
    (run_dir,) = (tmp_path/"runs").iterdir()
    assert out.rstrip().endswith("# train on the cleaned dataset\n```") and f"finetune-nb {run_dir/'dataset'}" in out


@pytest.mark.slow
def test_a_failed_preflight_under_accelerate_launch_is_said_once_and_every_process_exits_2(tmp_path):
    "Two processes (gloo on the CPU): the main one prints the problems, both leave together with exit code 2."
    one = write(tmp_path/"one.jsonl", [{"text": "a lonely text", "label": "x"}])
    accelerate = str(Path(sys.executable).parent/"accelerate")
    res = subprocess.run([accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
                          "--dynamo_backend", "no", "-m", "finetune_nb.orchestrate", str(one), "--label-field", "label", "--dry-run",
                          "--runs-dir", str(tmp_path/"runs")], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert res.returncode != 0 and res.stderr.count("preflight found 1 problem") == 1, res.stderr[-3000:]
    codes = re.findall(r"exitcode\s*:\s*(-?\d+)", res.stderr)  # what the launcher reports of each process that left
    assert codes and set(codes) == {"2"}, res.stderr[-3000:]  # exit code 2 (a process the launcher stopped first: not listed)
    assert not (tmp_path/"runs").exists()
    bad = subprocess.run([*res.args[:-1], str(tmp_path/"runs"), "--seed", "-3"], capture_output=True, text=True, timeout=300,
                         cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert bad.returncode != 0 and bad.stderr.count("--seed must be between") == 1, bad.stderr[-3000:]  # a settings error too


def test_predictions_beside_another_files_metrics_are_refused_before_any_work(base, tmp_path, capsys):
    (tmp_path/"out").mkdir()
    (tmp_path/"out"/"metrics.json").write_text(json.dumps({"output": "old.jsonl", "rows": 3}))
    code, _, err = run(capsys, [str(write(tmp_path/"t.jsonl", topic_rows())), *quick(base, tmp_path/"runs"),
                                "--predictions", str(tmp_path/"out"/"new.jsonl")])
    assert code == 2 and "metrics.json holds the metrics of old.jsonl; evaluating into new.jsonl would replace them: write " \
                         "--predictions to another folder, or pass --overwrite" in err and nothing_written(tmp_path/"runs")


@pytest.mark.parametrize("rows, extra, says", [
    ([{"text": "a", "label": ""}, {"text": "b"}], [], "none of its 2 lines would be a row (empty_label 1, missing_label 1)"),
    (topic_rows(("card", "pin"), 4), ["--max-per-label", "2"], "'card' (2), 'pin' (2); add rows, raise --max-per-label, or run"),
])
def test_a_file_without_enough_rows_is_one_problem_that_names_its_fix(base, tmp_path, capsys, rows, extra, says):
    code, _, err = run(capsys, [str(write(tmp_path/"t.jsonl", rows)), *quick(base, tmp_path/"runs"), *extra])
    assert code == 2 and says in err and "preflight found 1 problem" in err and err.count("\n  - ") == 1, err


def test_papermill_inject_paths_is_not_an_unknown_parameter(tmp_path):
    "`--inject-paths` adds PAPERMILL_INPUT_PATH and friends: the run goes through, examples skipped, every step cell run."
    import papermill as pm
    data = write(tmp_path/"t.jsonl", topic_rows())
    nb = pm.execute_notebook(str(NBS/"01_clean.ipynb"), str(tmp_path/"out.ipynb"), cwd=str(tmp_path), kernel_name="python3",
                             progress_bar=False, parameters=dict(  # what `papermill --inject-paths` adds, as it adds them
                                 input_path=str(data), label_field="label", target=str(tmp_path/"d"), near_dup_threshold=1.0,
                                 PAPERMILL_INPUT_PATH=str(NBS/"01_clean.ipynb"), PAPERMILL_OUTPUT_PATH=str(tmp_path/"out.ipynb")))
    assert (tmp_path/"d"/"train.csv").is_file()
    code = [c for c in nb.cells if c.cell_type == "code"]
    start = next(i for i, c in enumerate(code) if c.source.startswith("# Run it"))
    assert all(c.execution_count for c in code[start:])
    assert "published to" in "".join(o.get("text", "") for c in code[start:] for o in c.get("outputs", []))


# --- what fails during the work: a full disk, a read-only folder ------------------------------------

def _full_disk_after_half(monkeypatch):
    "Every CSV write stops half-way with ENOSPC, as on a full disk."
    import errno, pandas as pd
    real = pd.DataFrame.to_csv
    def half(self, path, *a, **k):
        real(self, path, *a, **k)
        Path(path).write_bytes(Path(path).read_bytes()[:Path(path).stat().st_size//2])
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(pd.DataFrame, "to_csv", half)


def test_a_full_disk_while_publishing_keeps_the_previous_dataset_and_says_where(base, tmp_path, capsys, monkeypatch):
    target = tmp_path/"published"
    argv = [str(write(tmp_path/"t.jsonl", topic_rows())), *quick(base, tmp_path/"runs"), "--stop-after", "clean",
            "--dataset-target", str(target)]
    assert run(capsys, argv)[0] == 0
    before = {str(p.relative_to(target)): p.read_bytes() for p in target.rglob("*") if p.is_file()}
    _full_disk_after_half(monkeypatch)
    code, _, err = run(capsys, [*argv, "--overwrite", "--seed", "7"])
    assert code == 1 and (f"{target}: could not write (the disk is full); nothing was published: the previous version is intact; "
                          "free space there, then run again") in err, err
    assert {str(p.relative_to(target)): p.read_bytes() for p in target.rglob("*") if p.is_file()} == before
    assert not [p for p in tmp_path.iterdir() if ".staging-" in p.name]  # nothing half-written left beside it
    monkeypatch.undo()  # space freed: the same command again publishes the new version, whole
    assert run(capsys, [*argv, "--overwrite", "--seed", "7"])[0] == 0
    after = {str(p.relative_to(target)): p.read_bytes() for p in target.rglob("*") if p.is_file()}
    assert after != before and json.loads(after["stats.json"])["settings"]["seed"] == 7


def _user_namespaces() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode == 0


def test_a_folder_that_turns_read_only_during_the_work_is_said_with_its_path_and_resume_finishes(base, tmp_path):
    "A real read-only file system: the dataset's folder bind-mounted read-only (in a user namespace of the run's own) just"
    " before the cleaning step publishes; exit 1 naming the folder, run.json says so, and `--resume` then finishes the run."
    if not _user_namespaces(): pytest.skip("no user namespaces here (`unshare -rm`): a read-only mount cannot be made without root")
    out, runs = tmp_path/"out", tmp_path/"runs"
    out.mkdir()
    argv = [str(write(tmp_path/"t.jsonl", topic_rows())), *quick(base, runs), "--dataset-target", str(out/"dataset")]
    script = (f"import subprocess, sys\nimport finetune_nb.clean as C\nreal = C.publishing\n"
              f"def read_only_then(*a, **k):  # the disk goes read-only after the preflight, before the publication\n"
              f"    subprocess.run(['mount', '-o', 'bind,ro', {str(out)!r}, {str(out)!r}], check=True)\n"
              f"    return real(*a, **k)\nC.publishing = read_only_then\n"
              f"from finetune_nb.orchestrate import main\nsys.exit(main({argv!r}))")
    res = subprocess.run(["unshare", "-rm", sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    (run_dir,) = runs.iterdir()
    assert res.returncode == 1 and (f"{out}: could not write (the file system is read-only); dataset was not published; choose a "
                                    "folder this user may write to, then run again") in res.stderr, res.stderr[-3000:]
    record = json.loads((run_dir/"run.json").read_text())
    assert record["status"] == "failed" and record["steps"]["clean"]["status"] == "failed" and "read-only" in record["error"]
    assert list(out.iterdir()) == [] and f"finetune-nb {run_dir} --resume" in (run_dir/"summary.md").read_text()  # nothing half-written
    again = subprocess.run([str(Path(sys.executable).parent/"finetune-nb"), str(run_dir), "--resume"], capture_output=True, text=True,
                           timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})  # the mount is gone with its namespace
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((run_dir/"run.json").read_text())["status"] == "done" and (out/"dataset"/"stats.json").is_file()


