"""Texts longer than the window (issue 24): each `--long-texts` handling at `--max-length` 128 and 512, 3 seeds, on two
long-document sets, beside the TF-IDF baseline on the same split; macro-F1 (mean ± sd) and the evaluation's seconds per
1,000 documents. Saves bench/results/long.md (and long.json, every run's figures).

    .venv/bin/python bench/bench_long.py [--bbc BBC_JSONL] [--work DIR] [--seeds 42 1 2] [--at-once 2]
    .venv/bin/python bench/bench_long.py --summarise [--work DIR]

Data sets:
- **emails** (signal anywhere): BANKING77 queries (Casanueva et al. 2020, CC BY 4.0; `../shared/data/banking77/train.jsonl`),
  20 intents x 40 queries, each inside a support email of neutral sentences (`scripts/long_docs.py`, ~325 tokens) at a
  uniformly random place: the label is the query's intent, the rest carries none. **queries** is the same rows' bare
  queries: what the same labels reach on texts that fit.
- **bbc** (signal everywhere, strongest at the top): BBC News full texts (Greene & Cunningham 2006, 5 topics; research use
  only, so never committed: `bench/bbc.py` makes the JSONL), 60 articles a topic, title and body as one text (median ~420
  tokens).
Every run is `finetune-nb` on the embedded defaults (all-MiniLM-L6-v2, 2 epochs) but the data, `--max-length`,
`--long-texts`, `--seed` (the split and the training) and `--threads 1` (`--at-once` runs side by side, one core each).
A `chunks` model is evaluated again with `--pool max` (evaluation only). The baseline is the evaluation step's own
(TF-IDF + logistic regression fitted on the model's training rows), once per data set and seed.
"""
import argparse, json, random, subprocess, sys, time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT/"bench"/"results"
sys.path.insert(0, str(ROOT/"scripts"))
from long_docs import email  # noqa: E402

INTENTS, PER_INTENT, BBC_PER_TOPIC = 20, 40, 60
PKG = ""  # --package: run this copy of finetune_nb (a snapshot, so that editing the checkout does not change runs under way)
JOBS = [  # data set, max_length, handling (None: the texts fit, the handling does nothing; chunks-text-bN: chunks, --chunk-loss text,
         # N texts a batch: about the 16 inputs of a batch of chunks, so as many steps of as many inputs as --chunk-loss chunk)
    ("emails", 128, "truncate"), ("emails", 128, "head-tail"), ("emails", 128, "chunks"), ("emails", 128, "chunks-text-b4"),
    ("emails", 512, None),  # 512: first seed only
    ("queries", 128, None),
    ("bbc", 128, "truncate"), ("bbc", 128, "head-tail"), ("bbc", 128, "chunks"), ("bbc", 128, "chunks-text-b3"),
    ("bbc", 512, "truncate"), ("bbc", 512, "head-tail"), ("bbc", 512, "chunks"),
]
FIELDS = {"emails": ("text", "intent"), "queries": ("text", "intent"), "bbc": ("text", "topic")}


def make_data(work: Path, bbc: Path | None) -> dict[str, Path]:
    "The raw JSONL files: emails and queries from BANKING77 (seeded), a BBC subset when given."
    rows = [json.loads(l) for l in (ROOT.parent/"shared"/"data"/"banking77"/"train.jsonl").read_text().splitlines() if l.strip()]
    by = defaultdict(list)
    for r in rows: by[r["category"]].append(r["text"])
    rng = random.Random(24)
    intents = sorted(rng.sample(sorted(i for i in by if len(by[i]) >= PER_INTENT), INTENTS))
    picked = [(i, q) for i in intents for q in rng.sample(by[i], PER_INTENT)]
    rng.shuffle(picked)
    files = {"emails": work/"emails.jsonl", "queries": work/"queries.jsonl"}
    with files["emails"].open("w") as e, files["queries"].open("w") as q:
        for intent, text in picked:
            e.write(json.dumps({"text": email(text, rng), "intent": intent}) + "\n")
            q.write(json.dumps({"text": text, "intent": intent}) + "\n")
    if bbc:
        docs = [json.loads(l) for l in bbc.read_text().splitlines() if l.strip()]
        topics = defaultdict(list)
        for d in docs: topics[d["topic"]].append(d)
        files["bbc"] = work/"bbc.jsonl"
        with files["bbc"].open("w") as f:
            for t in sorted(topics):
                for d in rng.sample(topics[t], min(BBC_PER_TOPIC, len(topics[t]))): f.write(json.dumps({"text": d["text"], "topic": t}) + "\n")
    return files


def job_name(data, L, handling, seed, pool=""): return f"{data}-{L}-{handling or 'fits'}{'-' + pool if pool else ''}-s{seed}"


def command(files, work, data, L, handling, seed) -> list[str]:
    text, label = FIELDS[data]
    return [str(ROOT/".venv"/"bin"/"finetune-nb"), str(files[data]), "--text-field", text, "--label-field", label,
            "--max-length", str(L), "--long-texts", (handling or "truncate").split("-text")[0], "--seed", str(seed), "--threads", "1",
            *(["--chunk-loss", "text", "--train-batch-size", handling.rsplit("-b", 1)[1]] if (handling or "").startswith("chunks-text") else []),
            "--wandb-mode", "disabled", "--run-dir", str(work/"runs"/job_name(data, L, handling, seed))]


def pool_command(work, data, L, seed) -> list[str]:
    run = work/"runs"/job_name(data, L, "chunks", seed)
    return [str(ROOT/".venv"/"bin"/"finetune-nb"), str(run/"dataset"), "--model", str(run/"model"), "--pool", "max", "--threads", "1",
            "--wandb-mode", "disabled", "--no-baseline", "--run-dir", str(work/"runs"/job_name(data, L, "chunks", seed, "max"))]


def run_all(cmds: list[list[str]], at_once: int):
    "Run the commands, `at_once` at a time; each logs to <run-dir>.log; a run whose folder holds run.json marked done is skipped."
    todo, live = [c for c in cmds if not done(Path(c[-1]))], []
    while todo or live:
        while todo and len(live) < at_once:
            c = todo.pop(0)
            print(time.strftime("%H:%M:%S"), "start", Path(c[-1]).name, flush=True)
            live.append(subprocess.Popen(["env", "HF_HUB_OFFLINE=1", *([f"PYTHONPATH={PKG}"] if PKG else []), *c], stdout=open(f"{c[-1]}.log", "w"), stderr=subprocess.STDOUT, cwd=ROOT))
        time.sleep(5)
        for p in [p for p in live if p.poll() is not None]:
            live.remove(p)
            print(time.strftime("%H:%M:%S"), "done" if p.returncode == 0 else f"FAILED ({p.returncode})", Path(p.args[-1]).name, flush=True)


def done(run: Path) -> bool:
    try: return json.loads((run/"run.json").read_text())["status"] == "done"
    except (OSError, ValueError, KeyError): return False


def figures(run: Path) -> dict | None:
    "What one run measured: test macro-F1 and top-1 of the model and the baseline, throughput, training seconds and inputs."
    try: m = json.loads((run/"eval"/"metrics.json").read_text())
    except OSError: return None
    out = {"macro_f1": m["fine_tuned"]["macro_f1"], "top1": m["fine_tuned"]["top1_accuracy"], "rows": m["labelled"],
           "s_per_1000": 1000/m["throughput"]["texts_per_second"], "inputs_per_text": m["throughput"]["inputs"]/m["throughput"]["texts"],
           "over_window": m["truncated"]["rows"]}
    if "macro_f1" in (b := m.get("baseline") or {}): out["baseline_macro_f1"] = b["macro_f1"]
    try:
        t = json.loads((run/"model"/"train_metrics.json").read_text())
        out.update(train_seconds=t["seconds"], train_inputs=t["long_texts"]["inputs"]["train"]["inputs"], train_texts=t["rows"]["train"])
    except (OSError, KeyError): pass
    return out


def ms(xs, fmt="{:.3f}"):
    xs = [x for x in xs if x is not None]
    if not xs: return "–"
    return fmt.format(np.mean(xs)) + (" ± " + fmt.format(np.std(xs, ddof=1)) if len(xs) > 1 else "")


def summarise(work: Path, seeds) -> list[str]:
    rows, raw = [], {}
    for data, L, handling in JOBS:
        pools = ["mean", "max"] if handling == "chunks" else [""]
        for pool in pools:
            runs = [figures(work/"runs"/job_name(data, L, handling, s, "max" if pool == "max" else "")) for s in seeds]
            runs = [r for r in runs if r]
            if not runs: continue
            if pool == "max":  # an evaluation-only run of the chunks model: training figures are the mean run's
                for r, s in zip(runs, seeds): r.update({k: v for k, v in (figures(work/"runs"/job_name(data, L, handling, s)) or {}).items()
                                                        if k.startswith("train")})
            raw[job_name(data, L, handling, "", pool)] = runs
            what = ("(texts fit: no handling)" if handling is None else f"chunks, pool mean, loss per text ({handling.rsplit('-b', 1)[1]} texts a batch)" if handling.startswith("chunks-text")
                    else handling + (f", pool {pool}, loss per chunk" if pool else ""))
            rows.append(f"| {data} | {L} | {ms([r['over_window'] / r['rows'] for r in runs], '{:.0%}')} | {what} | {len(runs)} | "
                        f"{ms([r['macro_f1'] for r in runs])} | {ms([r['top1'] for r in runs])} | {ms([r['s_per_1000'] for r in runs], '{:.1f}')} | "
                        f"{ms([r['inputs_per_text'] for r in runs], '{:.2f}')} | {ms([r.get('train_seconds') for r in runs], '{:.0f}')} |")
        if (data, L) in (("emails", 128), ("queries", 128), ("bbc", 128)) and handling in ("truncate", None):
            runs = [figures(work/"runs"/job_name(data, L, handling, s)) for s in seeds]
            if runs := [r for r in runs if r and "baseline_macro_f1" in r]:
                rows.append(f"| {data} | – | – | TF-IDF + LR baseline (same split) | {len(runs)} | {ms([r['baseline_macro_f1'] for r in runs])} "
                            "| – | – | – | – |")
    (RESULTS/"long.json").write_text(json.dumps(raw, indent=1) + "\n")
    return ["| data set | max_length | test texts over the window | handling | seeds | macro-F1 | top-1 | eval s / 1,000 texts "
            "| model inputs per text | training s |", "|---|---|---|---|---|---|---|---|---|---|", *rows]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bbc", type=Path, help="BBC News JSONL made by bench/bbc.py (never committed: research-use licence)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_long"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2])
    ap.add_argument("--at-once", type=int, default=2)
    ap.add_argument("--only", nargs="*", default=[], help="data sets to run (default: all that have data)")
    ap.add_argument("--summarise", action="store_true", help="only write the table from the runs in --work")
    ap.add_argument("--package", default="", help="folder holding a copy of finetune_nb to run (PYTHONPATH); default: the checkout's")
    a = ap.parse_args()
    global PKG
    PKG = a.package
    (a.work/"runs").mkdir(parents=True, exist_ok=True)
    if not a.summarise:
        files = make_data(a.work, a.bbc)
        jobs = [j for j in JOBS if j[0] in files and (not a.only or j[0] in a.only)]
        run_all([command(files, a.work, *j, s) for s in a.seeds for j in jobs if not (j[:2] == ("emails", 512) and s != a.seeds[0])],
                a.at_once)  # whole emails at 512: the costliest reference (~20 min a run on one core), one seed
        run_all([pool_command(a.work, d, L, s) for s in a.seeds for d, L, h in jobs if h == "chunks"], a.at_once)
    table = summarise(a.work, a.seeds)
    lines = [f"# Long texts (`bench/bench_long.py`, {time.strftime('%Y-%m-%d')})", "",
             "Test macro-F1 and top-1 (mean ± sd over seeds " + ", ".join(map(str, a.seeds)) + "); evaluation seconds per 1,000 "
             "texts (prediction only, one thread); model inputs per text (chunks: the windows read); training seconds (one thread, "
             "2 epochs). all-MiniLM-L6-v2, embedded defaults. Data sets: see the script's docstring.", "", *table]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS/"long.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
