"""Training and prediction throughput on a GPU (issue 25): what `scripts/gpu_bench.sh` runs when a GPU machine is at hand.

    .venv/bin/python bench/bench_gpu.py [--base-model all-MiniLM-L6-v2|microsoft/deberta-v3-base] [--epochs 1] [--work DIR]

1. Training: the training step (`run_train`, its defaults: bf16 where the GPU has it, else fp16) on banking77's train
   file (10,003 texts, 77 intents, CC BY 4.0, ../shared/data), `--epochs` epochs; the Trainer's samples/s.
2. Prediction: the published model on banking77's test file (3,080 texts) through `Classifier.predict` at batch 64, in
   fp32 and in the default half precision; texts/s of each (after a warm-up pass), and the half-precision run's top-1
   and top-3 agreement with fp32. The batch-64 `pipeline()` beside them, as the ordinary baseline.
Saves bench/results/gpu.md (with the GPU's name). Needs a CUDA GPU; on a machine without one it says so and stops.
"""
import argparse, json, subprocess, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent/"shared"/"data"/"banking77"


def timed(f, *a, **kw):
    t0 = time.perf_counter()
    out = f(*a, **kw)
    import torch
    torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-model", default="")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir())/"bench_gpu")
    a = ap.parse_args()
    import pandas as pd, torch
    if not torch.cuda.is_available(): raise SystemExit("bench_gpu: no CUDA GPU here")
    from finetune_nb.predict import Classifier
    from finetune_nb.train import TrainSettings, run_train
    gpu = torch.cuda.get_device_name(0)
    a.work.mkdir(parents=True, exist_ok=True)
    data = a.work/"data"
    if not (data/"README.md").exists():
        (data/"data").mkdir(parents=True, exist_ok=True)
        for split, f in (("train", "train.jsonl"), ("test", "test.jsonl")):
            df = pd.read_json(SHARED/f, lines=True).rename(columns={"category": "label"})
            df.assign(id=range(1, len(df) + 1))[["id", "text", "label"]].to_parquet(data/"data"/f"{split}.parquet", index=False)
        (data/"README.md").write_text("---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/train.parquet\n"
                                      "  - split: test\n    path: data/test.parquet\n---\n")
    model = a.work/"model"
    res, _ = run_train(TrainSettings(dataset=str(data), base_model=a.base_model, target=str(model), overwrite=True,
                                     epochs=a.epochs, wandb_mode="disabled", max_length=128))
    train = res.info["train"]
    texts = pd.read_json(SHARED/"test.jsonl", lines=True)["text"].tolist()
    rows = []
    from transformers import pipeline
    pipe = pipeline("text-classification", model=str(model), top_k=3, device=0)
    pipe(texts[:256], batch_size=64)  # warm-up
    out, dt = timed(pipe, texts, batch_size=64)
    rows.append(("`pipeline(top_k=3)`, batch 64, fp32", len(texts)/dt, None))
    ref = None
    for precision in ("fp32", "auto"):
        clf = Classifier(str(model), device="cuda", precision=precision)
        clf.predict(texts[:256], top_k=3, batch_size=64)  # warm-up
        (top, _), dt = timed(clf.predict, texts, top_k=3, batch_size=64)
        if ref is None: ref = top
        agree = (sum(x[0] == y[0] for x, y in zip(top, ref))/len(top), sum(x == y for x, y in zip(top, ref))/len(top))
        rows.append((f"`Classifier.predict`, batch 64, {clf.precision}", len(texts)/dt, agree))
    lines = [f"# GPU throughput (`bench/bench_gpu.py`, {time.strftime('%Y-%m-%d')}, {gpu})", "",
             f"Training: {res.info['base_model']['name']}, banking77 train ({res.info['rows']['train']:,} rows), {a.epochs:g} epochs at "
             f"max_length 128: **{train.get('train_samples_per_second', 0):.1f} samples/s** ({train.get('train_runtime', 0):.0f} s; "
             f"validation macro-F1 {res.metrics.get('macro_f1', 0):.3f}).", "",
             "Prediction on banking77 test (3,080 texts), after a warm-up pass:", "",
             "| predictor | texts/s | top-1 same as fp32 | top-3 same as fp32 |", "|---|---|---|---|"]
    for name, tps, agree in rows:
        lines.append(f"| {name} | {tps:,.0f} | {agree[0]:.4f} | {agree[1]:.4f} |" if agree else f"| {name} | {tps:,.0f} | – | – |")
    (ROOT/"bench"/"results").mkdir(exist_ok=True)
    (ROOT/"bench"/"results"/"gpu.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(subprocess.run(["nvidia-smi", "--query-gpu=name,memory.used,memory.total", "--format=csv"], capture_output=True, text=True).stdout)


if __name__ == "__main__":
    main()
