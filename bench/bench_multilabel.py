"""Benchmark of the multi-label path against the single-label one at equal settings (issue 23). Prints a table and saves it to
bench/results/multilabel.md.

    .venv/bin/python bench/bench_multilabel.py [--quick] [--repeats N]

Every case is a fresh process; single- and multi-label cases alternate, `--repeats` times each (default 3), and the table
gives mean ± sd. Run it on an otherwise idle machine.

1. Cleaning (01_clean, read -> publish): the same 1,000,000 synthetic short texts (bench/synth.py: Zipf vocabulary, 5%
   injected near copies) written twice, once with one label per row (20 labels) and once with a label set per row: the
   same label first, a second label for 30% of the rows and a third for 5% (a near copy keeps its original's label or
   set; 5% of the copies get another). Target: the label-set file within 1.3x the single-label time.
2. Evaluation (03_eval's `evaluate`, the whole step: predict, records, scores file, metrics, calibration, cleanlab's
   label issues and plots; the TF-IDF baseline off, since these models have no training rows): banking77's official test
   file (3,080 texts) through all-MiniLM-L6-v2 with a 77-label head, once single-label (softmax, its `category`) and once
   multi-label (sigmoids, thresholds 0.5; the `category` as a set, with a second label for 30% of the rows). The two heads
   are the same initialisation: the work per text is the same network, so the comparison isolates what label sets add.
   Also the predictor alone (`Classifier.predict`, top-3 and every label's score). Target: label sets' texts/s within
   1.1x of single-label.
"""
import argparse, json, os, platform, statistics, subprocess, sys, tempfile, textwrap, time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/"bench"))
SHARED = ROOT.parent/"shared"/"data"/"banking77"
RESULTS = ROOT/"bench"/"results"


def write_pair(folder: Path, n: int, labels: int = 20, flip: float = 0.05, seed: int = 0) -> tuple[Path, Path]:
    "The same synthetic texts twice: `label` a string (single.jsonl) and `labels` a set whose first member is that string (sets.jsonl)."
    from synth import make_texts
    texts, pairs = make_texts(n, seed=seed)
    rng = np.random.default_rng(seed + 2)
    first = rng.integers(0, labels, n)
    extra = [[int(x) for x in rng.choice(labels, k, replace=False)] for k in rng.choice(3, n, p=[0.65, 0.30, 0.05])]
    sets = [sorted({int(f), *e}) for f, e in zip(first, extra)]
    for a, b in pairs:  # a near copy keeps its original's label and set, `flip` of them not
        if rng.random() >= flip: first[b], sets[b] = first[a], sets[a]
        else: first[b] = rng.integers(0, labels); sets[b] = sorted({int(first[b]), int(rng.integers(0, labels))})
    single, multi = folder/"single.jsonl", folder/"sets.jsonl"
    with open(single, "w") as f1, open(multi, "w") as f2:
        for t, l, s in zip(texts, first, sets):
            f1.write(json.dumps({"text": t, "label": f"intent_{l}"}) + "\n")
            f2.write(json.dumps({"text": t, "labels": [f"intent_{x}" for x in s]}) + "\n")
    return single, multi


CLEAN = """
import json, time
from finetune_nb.clean import CleanSettings, run_clean
t0 = time.perf_counter()
res, _ = run_clean(CleanSettings(input_path={path!r}, label_field={field!r}, target={target!r}))
dt = time.perf_counter() - t0
peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))/1024
print(json.dumps(dict(seconds=dt, peak_mb=peak, train=len(res.train), test=len(res.test), dropped=res.stats["dropped"],
                      problem_type=res.stats.get("problem_type"))))
"""

MODELS = """
import json, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from finetune_nb.train import default_base_model
base, labels = default_base_model(), {labels!r}
for name, problem in (("single", "single_label_classification"), ("multi", "multi_label_classification")):
    torch.manual_seed(0)  # the same head for both
    m = AutoModelForSequenceClassification.from_pretrained(base, num_labels=len(labels), id2label=dict(enumerate(labels)),
                                                           label2id={{l: i for i, l in enumerate(labels)}}, problem_type=problem)
    if problem.startswith("multi"): m.config.finetune_nb_thresholds = {{l: 0.5 for l in labels}}
    m.save_pretrained({folder!r} + "/" + name); AutoTokenizer.from_pretrained(base).save_pretrained({folder!r} + "/" + name)
"""

EVAL = """
import json, time
t0 = time.perf_counter()
from finetune_nb.evaluation import EvalSettings, evaluate
from finetune_nb.predict import Classifier
texts = [json.loads(l)["text"] for l in open({path!r})]
if {what!r} == "predict":
    t0 = time.perf_counter()
    clf = Classifier({model!r})
    clf.predict(texts, top_k=3, batch_size=64, keep_probs=True)
else:
    t0 = time.perf_counter()
    res = evaluate(EvalSettings(examples={path!r}, label_field={field!r}, wandb_mode="disabled", baseline=False), {model!r}, "", {out!r})
dt = time.perf_counter() - t0
peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))/1024
print(json.dumps(dict(seconds=dt, peak_mb=peak, texts=len(texts))))
"""


def run(code: str) -> dict:
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "WANDB_MODE": "disabled"})
    if r.returncode: raise RuntimeError(r.stderr[-3000:])
    return json.loads(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else {}


def ms(xs, fmt="{:.1f}") -> str:
    return fmt.format(statistics.mean(xs)) + (" ± " + fmt.format(statistics.stdev(xs)) if len(xs) > 1 else "")


def main(quick: bool = False, repeats: int = 3):
    lines = []
    def out(line=""):
        print(line, flush=True); lines.append(line)
    n = 100_000 if quick else 1_000_000
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        single, multi = write_pair(d, n)
        res = {"single": [], "sets": []}
        for r in range(repeats):
            for name, path, field in (("single", single, "label"), ("sets", multi, "labels")):
                res[name].append(run(CLEAN.format(path=str(path), field=field, target=str(d/f"ds-{name}-{r}"))))
                print(name, r, f"{res[name][-1]['seconds']:.1f} s", flush=True)
        out(f"## Cleaning {n:,} rows: one label per row vs a label set per row\n")
        out(f"Same texts, same settings (defaults: near duplicates at cosine 0.8, noise 'drop', 80/20 split); {repeats} runs each, "
            "alternating, each a fresh process; mean ± sd.\n")
        out("| labels | seconds | peak MB | train | test | dropped (by reason, first run) |")
        out("|---|---|---|---|---|---|")
        for name, label in (("single", "one per row (`label`)"), ("sets", "a set per row (`labels`)")):
            rs = res[name]
            out(f"| {label} | {ms([r['seconds'] for r in rs])} | {ms([r['peak_mb'] for r in rs], '{:.0f}')} | {rs[0]['train']:,} | "
                f"{rs[0]['test']:,} | " + ", ".join(f"{k} {v:,}" for k, v in rs[0]["dropped"].items()) + " |")
        ratio = statistics.mean(r["seconds"] for r in res["sets"])/statistics.mean(r["seconds"] for r in res["single"])
        out(f"\nLabel sets take **{ratio:.2f}x** the single-label time (target: within 1.3x: {'met' if ratio <= 1.3 else '**missed**'}).\n")
        clean_ratio = ratio

        if not SHARED.exists():
            out(f"(evaluation skipped: needs {SHARED})")
            return lines
        rows = [json.loads(l) for l in open(SHARED/"test.jsonl")]
        labels = sorted({r["category"] for r in rows})
        rng = np.random.default_rng(0)
        with open(d/"single_eval.jsonl", "w") as f1, open(d/"sets_eval.jsonl", "w") as f2:
            for r in rows:
                f1.write(json.dumps({"text": r["text"], "category": r["category"]}) + "\n")
                s = {r["category"]} | ({labels[rng.integers(len(labels))]} if rng.random() < 0.3 else set())
                f2.write(json.dumps({"text": r["text"], "topics": sorted(s)}) + "\n")
        run(MODELS.format(labels=labels, folder=str(d/"models")))
        ev = {(w, k): [] for w in ("evaluate", "predict") for k in ("single", "multi")}
        run(EVAL.format(path=str(d/"single_eval.jsonl"), field="category", model=str(d/"models"/"single"), out=str(d/"warm"/"p.jsonl"), what="predict"))
        for r in range(repeats):
            for what in ("evaluate", "predict"):
                for kind, path, field in (("single", d/"single_eval.jsonl", "category"), ("multi", d/"sets_eval.jsonl", "topics")):
                    ev[what, kind].append(run(EVAL.format(path=str(path), field=field, model=str(d/"models"/kind),
                                                          out=str(d/f"e-{what}-{kind}-{r}"/"p.jsonl"), what=what)))
                    print(what, kind, r, f"{ev[what, kind][-1]['seconds']:.1f} s", flush=True)
        out(f"## Evaluation: {len(rows):,} banking77 test texts, 77 labels, single-label vs multi-label head\n")
        out(f"all-MiniLM-L6-v2 with the same 77-label head initialisation; {repeats} runs each, alternating, fresh processes "
            "(timed from the model's loading on), after one untimed warm-up; mean ± sd.\n")
        out("| what | head | texts/s | seconds | peak MB |")
        out("|---|---|---|---|---|")
        ratios = {}
        for what, label in (("evaluate", "the whole step (`evaluate`)"), ("predict", "the predictor (`Classifier.predict`)")):
            for kind in ("single", "multi"):
                rs = ev[what, kind]
                out(f"| {label} | {kind}-label | {ms([r['texts']/r['seconds'] for r in rs])} | {ms([r['seconds'] for r in rs])} | "
                    f"{ms([r['peak_mb'] for r in rs], '{:.0f}')} |")
            ratios[what] = statistics.mean(r["texts"]/r["seconds"] for r in ev[what, "single"])/statistics.mean(
                r["texts"]/r["seconds"] for r in ev[what, "multi"])
        out(f"\nSingle-label over multi-label throughput: the whole step **{ratios['evaluate']:.2f}x**, the predictor "
            f"{ratios['predict']:.2f}x (target: within 1.1x: {'met' if ratios['evaluate'] <= 1.1 else '**missed**'}).")
    head = ["# Multi-label benchmark", "", "Made by `bench/bench_multilabel.py`; its docstring says what each case does.", "",
            f"Machine: {platform.machine()}, {len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}; "
            f"{time.strftime('%Y-%m-%d')}.", "",
            f"- Cleaning {n:,} rows with label sets: {clean_ratio:.2f}x the single-label time (target 1.3x).",
            f"- Evaluation throughput, single over multi: {ratios['evaluate']:.2f}x for the whole step (target 1.1x).", ""]
    return head + lines


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="100k rows instead of 1M")
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    lines = main(a.quick, a.repeats)
    RESULTS.mkdir(exist_ok=True)
    if not a.quick: (RESULTS/"multilabel.md").write_text("\n".join(lines) + "\n")
