"""The multi-label path on a real public data set (issue 23): GoEmotions through `finetune-nb`, both engines, then
`--model M --examples FILE`; the fine-tuned model against the TF-IDF baseline on the same split. Saves
bench/results/goemotions.md.

    .venv/bin/python bench/bench_goemotions.py GOEMOTIONS_DATA_FOLDER [--max-train-samples N] [--runs-dir DIR]
    .venv/bin/python bench/bench_goemotions.py --summarise PYTHON_RUN PAPERMILL_RUN EXAMPLES_RUN [--seed-runs RUN ...]
    .venv/bin/python bench/bench_goemotions.py GOEMOTIONS_DATA_FOLDER --study --max-train-samples 0 [--at-once 3]

`--study`: only the python engine, seeds 42, 1 and 2 on `--max-train-samples` rows (0: every training row), side by side
(`--at-once`, one thread each), against the baseline on the same rows: bench/results/goemotions_study_<rows>.md. The run
of 2026-12-06 (`--max-train-samples 0 --at-once 3`, 37,536 rows, 51 minutes a run on 2 shared cores) is the README's table.

GoEmotions (Demszky et al., 2020; Google Research, Apache License 2.0): 54,263 Reddit comments with 1-5 of 28 emotions
(the "simplified" release, `data/original` of github.com/google-research/google-research `goemotions/data` or of
monologg/GoEmotions-pytorch). `bench/goemotions.py` joins its three files into one raw JSONL file; the pipeline cleans and
splits it itself (iterative stratification, 80/20), so the split is this pipeline's, not GoEmotions' own.
Runs, all on the embedded defaults but the label field (`emotions`), `--max-train-samples` (the CPU budget; the baseline
fits on the same rows, `training_rows.json`), `--class-weights balanced` (a BCE `pos_weight` per label: without it MiniLM
stays at the label priors here, validation macro-F1 0.07 after one epoch against 0.39 with it) and `--threads 1` (the two
engines train side by side, one core each: on 2 cores that is much faster than two 2-thread processes fighting):
1. `finetune-nb goemotions.jsonl --label-field emotions` (engine python);
2. the same with `--engine papermill` (the step notebooks executed into the run folder);
3. `finetune-nb --model <run 1's model> --examples <run 1's test split as JSONL>`: the published model on a file, which must
   give run 1's test figures again;
4. run 1 again with other seeds (`--seeds`, default 1 and 2): the fine-tuned model and the baseline, mean ± sd.
The report of 2026-12-06 summarised runs made while the baseline was still fitted without class weights: their engine table
shows that baseline (as those runs computed it), and the seed table the final one, from eval-only runs of the same models
(`finetune-nb <run>/dataset --model <run>/model`, `--seed-runs`).
"""
import argparse, json, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT/"bench"/"results"
SEEDS = (42, 1, 2)
KEYS = ("subset_accuracy", "macro_f1", "micro_f1", "samples_f1", "hamming_loss", "precision@1", "recall@3")


def start(run_dir: Path, *args: str) -> subprocess.Popen:
    "Start the command into `run_dir`, offline, as README's demo runs; its log is `run_dir`.log."
    cmd = ["env", "HF_HUB_OFFLINE=1", "WANDB_MODE=offline", str(ROOT/".venv"/"bin"/"finetune-nb"), *args, "--run-dir", str(run_dir)]
    return subprocess.Popen(cmd, stdout=open(f"{run_dir}.log", "w"), stderr=subprocess.STDOUT, cwd=ROOT)


def finish(*procs: subprocess.Popen):
    for p in procs:
        if p.wait(): raise RuntimeError(f"{p.args[-1]} failed: see {p.args[-1]}.log")


def test_split_as_examples(run_dir: Path, out: Path) -> Path:
    "Run 1's held-out test split as a raw JSONL file of `text` and `emotions`."
    from finetune_nb.data import load_clean_dataset
    test = load_clean_dataset(str(run_dir/"dataset"))["test"]
    with out.open("w", encoding="utf-8") as f:
        for r in test: f.write(json.dumps({"text": r["text"], "emotions": list(r["label"])}, ensure_ascii=False) + "\n")
    return out


def summarise(runs: dict[str, Path], seed_runs: list[Path] = ()) -> list[str]:
    "The report: data, training, the test rows of the fine-tuned model and the baseline per run, and mean ± sd over seeds."
    import statistics
    rec = {k: json.loads((d/"run.json").read_text()) for k, d in runs.items()}
    met = {k: json.loads(Path(r["artefacts"]["metrics"]).read_text()) for k, r in rec.items()}
    first = rec["python"]
    data, train = first["results"]["data"], first["results"]["train"]
    lines = ["# GoEmotions: the multi-label path on a real data set", "",
             "Made by `bench/bench_goemotions.py`; its docstring says what each run does. GoEmotions: Demszky et al., 2020, "
             "Google Research, Apache License 2.0.", "",
             f"**Data**: {data['lines']:,} lines → train {data['splits']['train']:,}, test {data['splits']['test']:,}; dropped "
             + ", ".join(f"{k} {v:,}" for k, v in data["dropped"].items()) + f"; {data['labels']['read']} labels; labels per row "
             f"{data['label_sets']['train']['labels_per_row']:.2f} (train), {data['label_sets']['test']['labels_per_row']:.2f} (test).", "",
             f"**Training** (python engine, seed 42): all-MiniLM-L6-v2, {train['epochs']:.0f} epochs on {train['rows']['train']:,} rows "
             f"(`--max-train-samples`), {train['rows']['validation']:,} validation rows picked the checkpoint and tuned the "
             f"thresholds; {train['device']}, one thread, {train['seconds']/60:.0f} min beside the other engine's run on 2 cores.", "",
             "| run | rows | model | " + " | ".join(k.replace("_", " ") for k in KEYS) + " |",
             "|---|---|---|" + "---|"*len(KEYS)]
    for k, m in met.items():
        weights = (m.get("baseline") or {}).get("class_weights", "none")
        for part, name in (("fine_tuned", "fine-tuned MiniLM"), ("baseline", f"TF-IDF + LR (same training rows, class weights {weights})")):
            if "macro_f1" in (m.get(part) or {}):
                lines.append(f"| {k} | {m['labelled']:,} | {name} | " + " | ".join(f"{m[part][x]:.4f}" for x in KEYS) + " |")
    f, b = met["python"]["fine_tuned"], met["python"]["baseline"]
    lines += ["", f"Seed 42, as these runs computed it: test macro-F1 fine-tuned {f['macro_f1']:.4f}, TF-IDF baseline {b['macro_f1']:.4f} on "
                  f"the same {met['python']['labelled']:,} rows (baseline fitted in {b['seconds']:.0f} s on {b['fitted_on']['train']:,} rows, "
                  f"thresholds on {b['fitted_on']['validation']:,}, class weights {b.get('class_weights', 'none')})."]
    same = lambda k: all(abs(met[k]["fine_tuned"][x] - f[x]) < 1e-9 for x in KEYS)
    lines += ["", "Every line accounted for: " + ", ".join(
        f"{k} {sum(r['results']['data']['splits'].values()) + sum(r['results']['data']['dropped'].values()) == r['results']['data']['lines']}"
        for k, r in rec.items() if "data" in r["results"]) + f". The papermill engine gives the python engine's test figures: "
        f"{same('papermill')}; `--model --examples` on the test split written as a file gives them again: {same('examples')}."]
    if seed_runs:  # every seed's run, 42 first (its run, or an evaluation of its model by the final code)
        lines += seed_table(seed_runs)
        b = json.loads(Path(json.loads((seed_runs[0]/"run.json").read_text())["artefacts"]["metrics"]).read_text())["baseline"]
    lines += per_label_table(f, b)
    return lines


def seed_table(seed_runs: list[Path]) -> list[str]:
    "Mean ± sd of the fine-tuned model and the baseline over the seeds' runs (42 first), per seed, and the verdict."
    import statistics
    seeds = [json.loads(Path(json.loads((d/"run.json").read_text())["artefacts"]["metrics"]).read_text()) for d in seed_runs]
    ms = lambda part, x: (f"{statistics.mean(m[part][x] for m in seeds):.4f} ± {statistics.stdev(m[part][x] for m in seeds):.4f}")
    weights = {m["baseline"].get("class_weights", "none") for m in seeds}
    lines = ["", f"**{len(seeds)} seeds** ({', '.join(str(s) for s in SEEDS[:len(seeds)])}: each its own split, validation "
                 "hold-out, sample of training rows and initialisation; the baseline on each seed's rows, class weights "
                 f"{'/'.join(sorted(weights))}), python engine, mean ± sd:", "",
             "| model | " + " | ".join(k.replace("_", " ") for k in KEYS) + " |", "|---|" + "---|"*len(KEYS),
             "| fine-tuned MiniLM | " + " | ".join(ms("fine_tuned", x) for x in KEYS) + " |",
             "| TF-IDF + LR (same training rows) | " + " | ".join(ms("baseline", x) for x in KEYS) + " |", "",
             "Per seed, test macro-F1 fine-tuned / baseline: " + "; ".join(
                 f"{sd}: {m['fine_tuned']['macro_f1']:.4f} / {m['baseline']['macro_f1']:.4f}" for sd, m in zip(SEEDS, seeds)) + "."]
    gap = statistics.mean(m["fine_tuned"]["macro_f1"] - m["baseline"]["macro_f1"] for m in seeds)
    sd = statistics.stdev(m["fine_tuned"]["macro_f1"] - m["baseline"]["macro_f1"] for m in seeds)
    lines += ["", f"**Verdict**: test macro-F1 fine-tuned minus baseline {gap:+.4f} ± {sd:.4f} over the seeds: "
                  + ("a tie within one sd" if abs(gap) <= sd else "the fine-tuned model ahead" if gap > 0 else "the baseline ahead")
                  + f"; micro-F1 {statistics.mean(m['fine_tuned']['micro_f1'] - m['baseline']['micro_f1'] for m in seeds):+.4f} on average."]
    return lines


def per_label_table(f: dict, b: dict) -> list[str]:
    "Per label (seed 42's test split), rarest first: support, threshold and F1 of the model and of the baseline."
    per = sorted(f["per_label"].items(), key=lambda kv: kv[1]["support"])
    lines = ["", "Per label (seed 42, test split), rarest first:", ""]
    lines += ["| label | support | threshold | F1 | baseline threshold | baseline F1 |", "|---|---|---|---|---|---|"]
    lines += [f"| {l} | {v['support']} | {v['threshold']:.2f} | {v['f1']:.3f} | {b['per_label'][l]['threshold']:.2f} | "
              f"{b['per_label'][l]['f1']:.3f} |" for l, v in per]
    return lines


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", nargs="?", type=Path, help="GoEmotions' data/original folder")
    p.add_argument("--max-train-samples", type=int, default=16000)
    p.add_argument("--runs-dir", type=Path, default=Path("/tmp/goemotions_runs"))
    p.add_argument("--seeds", type=int, nargs="*", default=list(SEEDS[1:]), help="more seeds of the python engine, for mean ± sd")
    p.add_argument("--summarise", nargs=3, type=Path, metavar=("PYTHON_RUN", "PAPERMILL_RUN", "EXAMPLES_RUN"))
    p.add_argument("--seed-runs", nargs="*", type=Path, default=[], help="with --summarise: the run of every seed, 42 first")
    p.add_argument("--study", action="store_true", help="only the python engine on seeds 42, 1, 2 (at --max-train-samples; 0: every "
                   "training row): bench/results/goemotions_study_<rows>.md")
    p.add_argument("--summarise-study", nargs="*", type=Path, metavar="RUN", help="the study's report from its runs, seed 42 first")
    p.add_argument("--at-once", type=int, default=2, help="--study: runs side by side, one thread each (3 on 2 cores: all done sooner)")
    a = p.parse_args()
    if a.study or a.summarise_study is not None: return study(a)
    if a.summarise: runs, seed_runs = dict(zip(("python", "papermill", "examples"), a.summarise)), a.seed_runs
    else:
        common = common_args(a)
        runs = {"python": a.runs_dir/"python", "papermill": a.runs_dir/"papermill"}
        finish(start(runs["python"], *common), start(runs["papermill"], *common, "--engine", "papermill"))
        model = json.loads((runs["python"]/"run.json").read_text())["artefacts"]["model"]["local"]
        ex = test_split_as_examples(runs["python"], a.runs_dir/"goemotions_test.jsonl")
        runs["examples"] = a.runs_dir/"examples"
        finish(start(runs["examples"], "--model", model, "--examples", str(ex), "--label-field", "emotions", "--threads", "1"))
        more = [a.runs_dir/f"python-seed{sd}" for sd in a.seeds]
        for pair in (more[i:i + 2] for i in range(0, len(more), 2)):  # two at a time, a core each
            finish(*(start(d, *common, "--seed", d.name.removeprefix("python-seed")) for d in pair))
        seed_runs = [runs["python"], *more]
    lines = summarise(runs, seed_runs)
    print("\n".join(lines))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS/"goemotions.md").write_text("\n".join(lines) + "\n")


def common_args(a) -> list[str]:
    "The raw JSONL file made from the release (in `--runs-dir`) and the settings every run shares."
    sys.path.insert(0, str(ROOT/"bench"))
    from goemotions import convert
    a.runs_dir.mkdir(parents=True, exist_ok=True)
    raw = a.runs_dir/"goemotions.jsonl"
    convert(a.data, raw)
    return [str(raw), "--label-field", "emotions", "--max-train-samples", str(a.max_train_samples), "--class-weights", "balanced",
            "--threads", "1"]


def study(a):
    "Seeds 42, 1, 2 of the python engine at `--max-train-samples` (0: all rows), `--at-once` side by side, and their report."
    if a.summarise_study: runs = a.summarise_study
    else:
        common = common_args(a)
        runs = [a.runs_dir/f"study-{a.max_train_samples or 'all'}-seed{sd}" for sd in SEEDS]
        for group in (runs[i:i + a.at_once] for i in range(0, len(runs), a.at_once)):  # side by side, a thread each
            finish(*(start(d, *common, "--seed", d.name.rsplit("seed", 1)[1]) for d in group))
    rec = json.loads((runs[0]/"run.json").read_text())
    met = json.loads(Path(rec["artefacts"]["metrics"]).read_text())
    data, train = rec["results"]["data"], rec["results"]["train"]
    rows = train["rows"]["train"]
    lines = [f"# GoEmotions, {rows:,} training rows: the fine-tuned model against the TF-IDF baseline", "",
             "Made by `bench/bench_goemotions.py --study` (its docstring says what the runs do). GoEmotions: Demszky et al., "
             "2020, Google Research, Apache License 2.0.", "",
             f"**Data**: {data['lines']:,} lines → train {data['splits']['train']:,}, test {data['splits']['test']:,}; dropped "
             + ", ".join(f"{k} {v:,}" for k, v in data["dropped"].items()) + f"; {data['labels']['read']} labels.", "",
             f"**Training** (python engine): all-MiniLM-L6-v2, {train['epochs']:.0f} epochs on {rows:,} rows "
             f"({'every training row' if not rec['settings']['max_train_samples'] else '`--max-train-samples`'}), "
             f"{train['rows']['validation']:,} validation rows picked the checkpoint and tuned the thresholds (grid 0.01–0.99), "
             f"`--class-weights balanced`; {train['device']}, one thread, {train['seconds']/60:.0f} min (seed 42) beside the other "
             "seeds' runs on 2 cores. The baseline: TF-IDF + logistic regression on the same rows, with the same class weights."]
    lines += seed_table(runs)
    lines += per_label_table(met["fine_tuned"], met["baseline"])
    print("\n".join(lines))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS/f"goemotions_study_{rec['settings']['max_train_samples'] or 'all'}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
