"""Do the tests catch the bugs they claim to? Small, realistic bugs ("mutants") planted one at a time in a scratch copy of
the project; each must make the fast tests that claim to guard it fail.

    python scripts/mutants.py                     # every mutant (`make mutants`); the last line: `N of M mutants killed`
    python scripts/mutants.py swapped-scores      # some, by name
    python scripts/mutants.py --list              # what each mutant is, and the tests that guard it

Each mutant replaces one exact snippet of a generated module (`finetune_nb/*.py`) — and, where a notebook's examples guard
it, the same snippet in that notebook's cell — in a copy of the checkout under a temporary folder; the real tree is never
touched. Its guards run there with pytest (no random order, one process, stop at the first failure), with the copy first
on PYTHONPATH so that the package, the notebooks' kernels and the subprocesses all import the mutated code. A mutant is
*killed* when a guard fails; one that survives is a hole in the tests. First the guards run once on the unmutated copy:
they must pass, or a kill would prove nothing. A mutant whose snippet is no longer in the code is reported as stale (the
code moved: update the mutant). Exit code 0 only when every mutant is killed. New features add their mutants here.
"""
from __future__ import annotations

import argparse, json, os, shutil, subprocess, sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Mutant:
    name: str
    bug: str  # the realistic bug, in words
    module: str  # finetune_nb/<module>.py
    old: str  # an exact snippet of that module (it must occur exactly once)
    new: str  # what the bug makes of it
    guards: list[str]  # pytest node ids (file::test, or file::test[param]), one of which must fail
    notebook: str | None = None  # the notebook whose exported cell holds the snippet, when a guard runs that notebook
    extra: list[tuple[str, str, str]] = field(default_factory=list)  # more (module, old, new) of the same bug


EV, CL, CO, TR, FA, FF, NB, HU = ("tests/test_evaluation.py", "tests/test_clean.py", "tests/test_core.py", "tests/test_train.py",
                                  "tests/test_faults.py", "tests/test_failfirst.py", "tests/test_notebooks.py", "tests/test_hub.py")
ML = "tests/test_multilabel.py"  # label sets (issue 23)
LT = "tests/test_long.py"  # long texts (issue 24)
FI = "tests/test_fields.py"  # several text fields (issue 24)
nb = lambda name: f"{NB}::test_notebook_runs[{name}]"

MUTANTS = [
    Mutant("swapped-scores", "each batch's predictions written to its rows in reverse: two texts get each other's labels and scores",
           "predict", "top_scores[idx], top_ids[idx] = s.cpu().numpy(), i.cpu().numpy()",
           "top_scores[idx[::-1]], top_ids[idx[::-1]] = s.cpu().numpy(), i.cpu().numpy()",
           [f"{EV}::test_predictions_come_back_in_input_order"]),
    Mutant("label-ids-shifted", "label ids mapped to the next label's name",
           "predict", "self.labels = [cfg.id2label[i] for i in range(cfg.num_labels)]",
           "self.labels = [cfg.id2label[(i + 1) % cfg.num_labels] for i in range(cfg.num_labels)]",
           [f"{EV}::test_the_fixture_model_has_learned_the_topics"]),
    Mutant("correct-at-k-off-by-one", "correct@k looks one label further than k",
           "metrics", "return np.array([t in row[:k] for t, row in zip(true, top)], dtype=np.int64)",
           "return np.array([t in row[:k + 1] for t, row in zip(true, top)], dtype=np.int64)",
           [f"{EV}::test_correct_at_k_is_membership_and_grows_with_k"]),
    Mutant("resume-predicts-again", "a resumed evaluation predicts the rows already in the file again",
           "evaluation", 'if not len(part := part[~done[i*chunk:i*chunk + len(part)]]): continue', "if not len(part): continue",
           [f"{EV}::test_resume_after_the_writer_is_killed"]),
    Mutant("half-line-kept", "a half-written last line is not cut off before appending",
           "records", "        if end < size:", "        if False:",
           [f"{EV}::test_resume_after_the_writer_is_killed"]),
    Mutant("models-mixed", "a predictions file of another model is appended to",
           "records", "    if others: raise FileExistsError(", "    if False: raise FileExistsError(",
           [f"{EV}::test_another_model_into_the_same_output_is_refused"]),
    Mutant("metrics-replaced", "another predictions file's metrics.json is overwritten",
           "records", "if other and Path(other).name != out.name and not overwrite: raise FileExistsError(",
           "if False: raise FileExistsError(",
           [f"{EV}::test_a_second_predictions_file_in_the_folder_does_not_replace_the_first_ones_metrics"]),
    Mutant("ece-unweighted", "the expected calibration error averages the bins without weighing them by their rows",
           "data", 'return {"ece": float(sum(g*t["rows"] for g, t in zip(gaps, table))/max(len(conf), 1)),',
           'return {"ece": float(sum(gaps)/max(len(gaps), 1)),',
           [nb("00a_data.ipynb")], notebook="00a_data.ipynb"),
    Mutant("label-issue-ties-reversed", "label issues with equal scores ranked by id from the highest",
           "data", "flagged = flagged[np.lexsort((ids[flagged], score))]", "flagged = flagged[np.lexsort((-ids[flagged], score))]",
           [nb("00a_data.ipynb")], notebook="00a_data.ipynb"),
    Mutant("ledger-forgets-exact-duplicates", "exact duplicates dropped without a ledger line",
           "clean", 'ledger += [entry(p, "exact_duplicate" if codes[p] == codes[f] else "near_duplicate", f) for p, f in zip(pos[dup], first[dup])]',
           'ledger += [entry(p, "near_duplicate", f) for p, f in zip(pos[dup], first[dup]) if codes[p] != codes[f]]',
           [f"{CL}::test_every_ledger_reason_is_reachable"]),
    Mutant("clean-refuses-everything", "clean() refuses every file",
           "clean", "    s, t0 = settings, time.time()\n", "    raise ValueError('no rows left to clean')\n",
           [f"{CL}::test_split_is_stratified_on_the_sample"]),
    Mutant("split-not-stratified", "the train/test split ignores the labels",
           "clean", 'train, test = train_test_split(df, test_size=n_test, stratify=df["label"], random_state=seed)',
           "train, test = train_test_split(df, test_size=n_test, stratify=None, random_state=seed)",
           [f"{CL}::test_split_is_stratified_on_the_sample"]),
    Mutant("near-duplicates-below-threshold", "pairs just under the threshold count as near duplicates",
           "pairs", "                if s >= t: bj, bs = i, s", "                if s >= t - 0.05: bj, bs = i, s",
           [f"{CL}::test_banking77_deduplication_equals_the_brute_force_rules"]),
    Mutant("redact-does-nothing", "redact returns the text as it is",
           "core", "    return _TOKEN_RE.sub(mask, text)", "    return text",
           [f"{CO}::test_redact_removes_the_secrets_in_force_in_any_context",
            f"{CO}::test_redact_removes_token_shaped_strings_in_force_or_not"], extra=[("core", "): text = text.replace(s, mask)", "): pass")]),
    Mutant("secrets-in-settings-accepted", "settings that carry a token are accepted",
           "core", "    if bad: raise SettingsError([", "    if False: raise SettingsError([",
           [f"{CO}::test_wandb_key_from_netrc"]),
    Mutant("paths-published", "a local path goes into what is published as it is, not by its name",
           "core", "    return (p.resolve().name or str(p)) if local else value", "    return value",
           [f"{CL}::test_the_published_card_and_stats_name_files_not_paths"]),
    Mutant("runs-in-the-cwd", "runs land under the working directory, not the checkout's runs/",
           "core", '    return root/"runs" if root else Path(start or Path.cwd()).expanduser().absolute()/"runs"',
           '    return Path(start or Path.cwd()).expanduser().absolute()/"runs"',
           [nb("00_core.ipynb")], notebook="00_core.ipynb"),
    Mutant("run-folders-shared", "two runs started in one second share a folder",
           "core", "        try: path.mkdir(parents=True); return path", "        path.mkdir(parents=True, exist_ok=True); return path",
           [nb("00_core.ipynb")], notebook="00_core.ipynb"),
    Mutant("interrupted-swap-not-restored", "a publication stopped between its two renames leaves no target",
           "core", "    if dest.exists() or not dest.parent.is_dir(): return False", "    return False",
           [nb("00_core.ipynb")], notebook="00_core.ipynb"),
    Mutant("resume-takes-any-artefact", "--resume takes whatever whole artefact sits at the target for this run's",
           "plan", "    if any(made.get(k) != getattr(step, k) for k in shapes): return False", "    return True",
           [nb("04a_plan.ipynb")], notebook="04a_plan.ipynb"),
    Mutant("unknown-parameters-accepted", "papermill parameters the notebook lacks are ignored",
           "headless", '    if unknown := [n for n in given if n not in known and not n.startswith("PAPERMILL_")]:',
           "    if unknown := []:",
           [f"{FF}::test_papermill_refuses_a_parameter_the_notebook_lacks"]),
    Mutant("class-weights-ignored", "class_weights='balanced' trains with the unweighted loss",
           "train", '    weights = None if s.class_weights != "balanced" else (', "    weights = None if True else (",
           [f"{TR}::test_class_weights_are_inverse_frequencies_and_the_loss_uses_them"]),
    Mutant("temperature-not-folded", "the fitted temperature is recorded but not folded into the published head",
           "train", "    scale_head(trainer.model, t)", "    pass",
           [f"{TR}::test_temperature_scaling_is_fitted_on_validation_and_folded_into_the_published_head"]),
    Mutant("labels-unsorted", "label ids follow the order labels were met, not their sorted order",
           "train", "    labels = sorted(members(train_labels))",
           "    labels = list(dict.fromkeys(str(m) for l in train_labels for m in (l if multi else [l])))",
           [nb("02_train.ipynb")], notebook="02_train.ipynb"),
    # label sets (issue 23)
    Mutant("majority-at-half", "noise='majority' keeps a label that exactly half of the copies carry",
           "labelsets", "out = tuple(sorted(l for l, c in counts.items() if 2*c > n))", "out = tuple(sorted(l for l, c in counts.items() if 2*c >= n))",
           [f"{ML}::test_copies_with_label_sets_resolve_as_documented"]),
    Mutant("cap-one-over", "max_per_label lets every label keep one row more than the cap",
           "labelsets", "if all(kept[k] < cap for k in keys[i]):", "if all(kept[k] <= cap for k in keys[i]):",
           [f"{ML}::test_the_cap_per_label_holds_and_drops_a_row_only_for_a_full_label"]),
    Mutant("test-only-label-kept", "a label the split put in test only stays there: the model never sees it",
           "labelsets", "if not Y[tr, j].any() and Y[te, j].any(): te, tr = _move(Y, te, tr, j)",
           "if False: te, tr = _move(Y, te, tr, j)",
           [f"{ML}::test_the_split_puts_every_label_of_five_rows_in_both_and_none_in_test_only"]),
    Mutant("softmax-for-sets", "a multi-label model's scores taken through a softmax, as a single-label model's",
           "predict", "probs = logits.sigmoid() if self.multi else logits.softmax(-1)", "probs = logits.softmax(-1)",
           [nb("03a_predict.ipynb")], notebook="03a_predict.ipynb"),
    Mutant("thresholds-ignored", "predicted sets decided at 0.5 for every label, not at the thresholds published with the model",
           "predict", "thresholds = torch.from_numpy(self.thresholds).to(self.device)",
           "thresholds = torch.full((len(self.labels),), 0.5, device=self.device)",
           [nb("03a_predict.ipynb")], notebook="03a_predict.ipynb"),
    Mutant("checkpoint-by-half", "the best checkpoint chosen by macro-F1 at 0.5, not at the thresholds tuned on validation",
           "train", "return {**set_scores(Y, P >= tune_thresholds(Y, P)),", "return {**set_scores(Y, P >= 0.5),",
           [nb("02_train.ipynb")], notebook="02_train.ipynb"),
    Mutant("pos-weight-inverted", "class_weights='balanced' on label sets weighs positives by positives over negatives",
           "train", "np.divide(len(Y) - pos, pos, out=np.ones(Y.shape[1]), where=pos > 0)",
           "np.divide(pos, len(Y) - pos, out=np.ones(Y.shape[1]), where=len(Y) - pos > 0)",
           [nb("02_train.ipynb")], notebook="02_train.ipynb"),
    Mutant("missing-extra-swapped", "a record's missing and extra labels swapped",
           "records", "r.update(exact=int(true == got), missing=sorted(true - got), extra=sorted(got - true))",
           "r.update(exact=int(true == got), missing=sorted(got - true), extra=sorted(true - got))",
           [f"{ML}::test_label_sets_run_through_every_step_with_every_line_accounted_for"]),
    Mutant("baseline-sees-validation", "the TF-IDF baseline fitted on the model's training and validation rows together",
           "evaluation", 'return train.loc[ids["train"]].reset_index(), train.loc[ids["validation"]].reset_index()',
           'return train.loc[ids["train"] + ids["validation"]].reset_index(), train.loc[ids["validation"]].reset_index()',
           [f"{EV}::test_the_baseline_is_fitted_on_the_models_training_rows_and_scored_on_the_same_rows"]),
    Mutant("baseline-thresholds-at-half", "the label-set baseline decides its sets at 0.5, not at thresholds tuned on validation",
           "baseline", "if multi: b.thresholds = tune_thresholds(binarize(val_labels, model_labels), b.scores(val_texts))",
           "if multi: b.thresholds = np.full(len(model_labels), 0.5)",
           [f"{ML}::test_the_label_set_baseline_is_one_vs_rest_with_thresholds_tuned_on_the_models_validation_rows"]),
    Mutant("baseline-columns-misaligned", "the baseline's scores in its own classes' order, not the model's labels' (a label no training row has shifts the rest)",
           "baseline", "out[:, [self.labels.index(c) for c in self.pipeline.classes_]] = P", "out[:, :P.shape[1]] = P",
           [f"{EV}::test_the_baseline_is_fitted_on_the_models_training_rows_and_scored_on_the_same_rows", nb("03e_baseline.ipynb")],
           notebook="03e_baseline.ipynb"),
    Mutant("baseline-weights-ignored", "the baseline fitted without the class weights the model was trained with",
           "evaluation", 'balanced = _model_file(model, "train_metrics.json", revision)["settings"].get("class_weights") == "balanced"',
           'balanced = False',
           [f"{ML}::test_the_label_set_baseline_is_one_vs_rest_with_thresholds_tuned_on_the_models_validation_rows"]),
    Mutant("set-temperature-softmax", "label sets' temperature fitted as if the scores were one softmax",
           "data", "    if y.ndim == 2:\n        pos, neg =", "    if False:\n        pos, neg =",
           [nb("00a_data.ipynb")], notebook="00a_data.ipynb"),
    Mutant("set-folds-unstratified", "label sets' k folds drawn without regard to their labels",
           "data", "kfold = MultilabelStratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)",
           "kfold = __import__('sklearn.model_selection').model_selection.KFold(folds, shuffle=True, random_state=seed)",
           [nb("00a_data.ipynb")], notebook="00a_data.ipynb"),
    Mutant("fields-run-together", "several fields compared as one text, so words move between fields unseen (a subject's last word "
           "becoming the body's first makes a copy)",
           "clean", 'if not isinstance(text, str): return "\\n".join(map(normalize_text, text))',
           'if not isinstance(text, str): return normalize_text(" ".join(text))',
           [nb("01_clean.ipynb")], notebook="01_clean.ipynb"),
    Mutant("pair-without-segments", "a text pair predicted without its token types (the model saw them in training)",
           "predict", 'if self.token_types is not None: feats["token_type_ids"] = [self.token_types[i] for i in idx]',
           'if False: feats["token_type_ids"] = [self.token_types[i] for i in idx]',
           [nb("03a_predict.ipynb")], notebook="03a_predict.ipynb"),
    Mutant("pair-joined", "two fields joined into one text, never the tokenizer's text pair",
           "data", "if len(texts[0]) == 2: return [t[0] for t in texts], [t[1] for t in texts]", "if False: pass",
           [nb("00a_data.ipynb"), nb("03a_predict.ipynb")], notebook="00a_data.ipynb"),
    Mutant("examples-fields-ignored", "examples read from the model's field names whatever `--text-field` names",
           "data", "        if len(names) == len(model_fields): return names", "        if len(names) == len(model_fields): return list(model_fields)",
           [f"{FI}::test_the_model_reads_examples_from_its_fields_or_from_as_many_named"]),
    # long texts (issue 24)
    Mutant("pools-swapped", "a chunked text's scores pooled by max when mean was asked (and mean for max)",
           "data", '    if pool == "mean":\n        out = np.zeros', '    if pool != "mean":\n        out = np.zeros',
           [f"{LT}::test_pooled_scores_are_each_chunks_own_scores_averaged_or_maxed", nb("00a_data.ipynb")], notebook="00a_data.ipynb"),
    Mutant("chunk-labels-by-position", "chunks labelled by their row position, not their text: after the first chunked text, "
           "chunks carry their neighbours' labels",
           "train", '"labels": [labels[d] for d in e.doc]', '"labels": [labels[min(k, len(labels) - 1)] for k in range(len(e.doc))]',
           [f"{LT}::test_training_and_prediction_feed_the_model_the_same_chunks"]),
    Mutant("head-tail-is-head", "head-tail keeps only the head (the tail never reaches the model)",
           "data", "windows = [np.concatenate([body[:head], body[len(body) - (room - head):]])]", "windows = [body[:room]]",
           [f"{LT}::test_the_signal_in_the_middle_reaches_the_model_only_in_chunks"]),
    Mutant("max-chunks-keeps-the-first", "`max_chunks` keeps a text's first chunks, so the end of a long text is never read",
           "data", "keep = np.unique(np.round(np.linspace(0, len(windows) - 1, max_chunks)).astype(int))",
           "keep = np.arange(max_chunks)", [nb("00a_data.ipynb")], notebook="00a_data.ipynb"),
    Mutant("examples-ignore-the-models-handling", "`--model M --examples` cuts long texts whatever the model was trained with",
           "predict", '"handling": long_texts or trained.get("handling", "truncate")', '"handling": long_texts or "truncate"',
           [f"{LT}::test_examples_are_read_as_the_model_was_trained_unless_told_otherwise"]),
    # issues 24 (loss per text) and 25 (prediction at scale)
    Mutant("text-loss-other-pool", "the loss per text pools a text's chunks otherwise than prediction does (max for mean)",
           "train", "            loss = pooled_loss(outputs.logits, doc, labels, pool, multi, weights)",
           '            loss = pooled_loss(outputs.logits, doc, labels, "max" if pool == "mean" else "mean", multi, weights)',
           [nb("02_train.ipynb")], notebook="02_train.ipynb"),
    Mutant("metrics-of-a-part", "the measures count only the first rows of each part of the records file",
           "evaluation", '        part = [r for r in part if r["id"] in rows.index]', '        part = [r for r in part if r["id"] in rows.index][:5]',
           [f"{EV}::test_a_file_read_in_parts_gives_the_figures_of_the_whole"]),
    Mutant("precision-unsaid", "half-precision records carry the full-precision fingerprint, so a file mixes two precisions",
           "predict", '("" if self.precision == "fp32" else f"+{self.precision}")', '""',
           [nb("03a_predict.ipynb")], notebook="03a_predict.ipynb"),
    Mutant("merge-twice", "a row two processes' parts both hold is merged twice",
           "evaluation", '            if r["id"] == last or held(r["id"]): continue', '            if held(r["id"]): continue',
           [nb("03_eval.ipynb")], notebook="03_eval.ipynb"),
    Mutant("gzip-read-raw", "a gzip-compressed file is read as its compressed bytes",
           "data", "        packed = f.read(2) == GZIP_MAGIC", "        packed = f.read(2) == b''",
           [f"{FF}::test_a_gzipped_file_is_read_as_it_is_and_one_cut_short_is_refused_naming_the_line"]),
    Mutant("examples-unchecked", "the evaluation reads an examples file without its whole-file checks (a text field in none of its objects)",
           "evaluation", 'read["label_field"], what="examples", check=whole):', 'read["label_field"], what="examples", check=False):',
           [nb("03_eval.ipynb")], notebook="03_eval.ipynb"),
    Mutant("hub-weights-unnamed", "a Hub model's weights are not named by their commit, so Hub models share a fingerprint and an ONNX graph",
           "predict", "        if not folder.is_dir():  # a Hub model", "        if False:  # a Hub model",
           [f"{EV}::test_a_hub_models_weights_are_named_by_the_commit_they_were_read_at"]),
    Mutant("onnx-unchecked", "an exported ONNX graph is kept without comparing its logits with PyTorch's",
           "predict", "        if diff <= atol:", "        if True:", [nb("03a_predict.ipynb")], notebook="03a_predict.ipynb"),
    Mutant("onnx-unsaid", "ONNX Runtime's records carry PyTorch's fingerprint, so a file mixes two runtimes",
           "predict", 'return self.weights_id + kind + ("+onnx" if self.runtime == "onnx" else "")', "return self.weights_id + kind",
           [f"{EV}::test_onnx_runtime_predicts_what_torch_does_and_its_records_never_mix_with_torchs"]),
]


def copy_project(dest: Path) -> Path:
    "What the guards need of a checkout: the package, the notebooks, the tests, the scripts, pyproject.toml, README.md."
    dest.mkdir(parents=True)
    if (ROOT.parent/"shared").is_dir() and not (dest.parent/"shared").exists():  # the data the benchmarks and some tests read
        (dest.parent/"shared").symlink_to(ROOT.parent/"shared")
    for name in ("finetune_nb", "nbs", "tests", "scripts"):
        shutil.copytree(ROOT/name, dest/name, ignore=shutil.ignore_patterns("__pycache__", "runs", "wandb", ".ipynb_checkpoints"))
    for name in ("pyproject.toml", "README.md", "mkdocs.yml"): shutil.copy2(ROOT/name, dest/name)
    return dest


def plant(m: Mutant, root: Path) -> str | None:
    "Apply `m` in the copy at `root`; the reason it cannot be (a stale snippet), or None."
    for module, old, new in [(m.module, m.old, m.new), *m.extra]:
        path = root/"finetune_nb"/f"{module}.py"
        text = path.read_text()
        if text.count(old) != 1: return f"its snippet occurs {text.count(old)} times in finetune_nb/{module}.py"
        path.write_text(text.replace(old, new))
        if m.notebook:
            p = root/"nbs"/m.notebook
            nbj = json.loads(p.read_text())
            cells = [c for c in nbj["cells"] if c["cell_type"] == "code" and old in "".join(c["source"])]
            if len(cells) != 1: return f"its snippet is in {len(cells)} cells of nbs/{m.notebook}"
            src = "".join(cells[0]["source"]).replace(old, new)
            cells[0]["source"] = [l + "\n" for l in src.split("\n")[:-1]] + [src.split("\n")[-1]]
            p.write_text(json.dumps(nbj, indent=1, ensure_ascii=False) + "\n")
    return None


def run_guards(root: Path, guards: list[str], timeout: float, stop: bool = True) -> tuple[bool, str, float]:
    "Run the guard tests in the copy at `root`: (all passed and none skipped, the tail of pytest's output, seconds)."
    env = {**os.environ, "PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "FINETUNE_NB_LAB": "0"}  # the step notebooks by papermill: the JupyterLab check runs all four at once
    t = time.time()
    try:
        res = subprocess.run([sys.executable, "-m", "pytest", *guards, *(["-x"] if stop else []), "-q", "-rs", "-n", "0", "-p",
                              "no:randomly", "-p", "no:cacheprovider", "--no-header", "-o", "addopts="],
                             cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired: return False, f"timed out after {timeout:.0f} s", time.time() - t
    lines = [l for l in res.stdout.splitlines() if l.strip()]
    said = lines[-1] if lines else res.stderr[-300:]
    return res.returncode == 0 and " skipped" not in said, said, time.time() - t


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="mutants to run (default: all)")
    ap.add_argument("--list", action="store_true", help="list the mutants and their guards")
    ap.add_argument("--jobs", type=int, default=2, help="mutants at once (default: 2)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds one mutant's guards may take (default: 300)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the unmutated run of the guards")
    a = ap.parse_args(argv)
    chosen = [m for m in MUTANTS if not a.names or m.name in a.names]
    if unknown := set(a.names) - {m.name for m in MUTANTS}: raise SystemExit(f"mutants: no mutant named {sorted(unknown)}")
    if a.list:
        for m in chosen: print(f"{m.name}: {m.bug}\n    finetune_nb/{m.module}.py; guards: {', '.join(m.guards)}")
        return
    work = Path(tempfile.mkdtemp(prefix="finetune-nb-mutants-"))
    t0 = time.time()
    try:
        if not a.no_baseline:
            base = copy_project(work/"baseline")
            guards = list(dict.fromkeys(g for m in chosen for g in m.guards))
            ok, said, secs = run_guards(base, guards, a.timeout*4, stop=False)
            print(f"baseline: the {len(guards)} guards on the unmutated code: {'pass' if ok else 'FAIL'} ({said}; {secs:.0f} s)", flush=True)
            if not ok: raise SystemExit("mutants: the guards fail (or skip) without any mutant, so a kill would prove nothing")

        def one(m: Mutant) -> tuple[Mutant, str, str]:
            root = copy_project(work/m.name)
            if stale := plant(m, root): return m, "stale", stale
            passed, said, secs = run_guards(root, m.guards, a.timeout)
            shutil.rmtree(root, ignore_errors=True)
            if " skipped" in said and "failed" not in said: return m, "SURVIVED", f"its guards were skipped: {said}"
            return m, ("SURVIVED" if passed else "killed"), f"{said} ({secs:.0f} s)"

        results = []
        with ThreadPoolExecutor(a.jobs) as pool:
            for m, outcome, said in pool.map(one, chosen):
                results.append(outcome)
                print(f"{outcome:>8}  {m.name}: {m.bug} — {said}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    killed = results.count("killed")
    print(f"({time.time() - t0:.0f} s)")
    print(f"{killed} of {len(chosen)} mutants killed")
    if killed != len(chosen): raise SystemExit(1)


if __name__ == "__main__": main()
