"""Print a short summary of a demo run folder (dataset stats, validation and test metrics)."""
import json, sys
from pathlib import Path

run = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/demo")
stats = json.loads((run/"dataset"/"stats.json").read_text())
train = json.loads((run/"model"/"train_metrics.json").read_text())
test = json.loads((run/"eval"/"metrics.json").read_text())
print(f"\nfinetune_nb demo: {run}/")
print(f"  data   {stats['input']['lines']} lines -> train {stats['splits']['train']}, test {stats['splits']['test']}; "
      f"dropped: " + ", ".join(f"{k} {v}" for k, v in stats["dropped"].items()))
v = train["validation"]
print(f"  train  {train['rows']['train']} rows, {train['settings']['epochs']:g} epochs on {train['device']['type']}: "
      f"validation accuracy {v['accuracy']:.3f}, macro-F1 {v['macro_f1']:.3f}")
f = test["fine_tuned"]
print(f"  test   {test['labelled']} rows: top-1 {f['top1_accuracy']:.3f}, top-2 {f.get('top2_accuracy', 0):.3f}, "
      f"top-3 {f.get('top3_accuracy', 0):.3f}, macro-F1 {f['macro_f1']:.3f}")
print(f"  files  {run}/dataset, {run}/model, {run}/eval/predictions.jsonl, executed notebooks {run}/0*.ipynb")
print(f"  W&B    offline runs under {run}/ (upload later with `wandb sync <folder>/wandb/offline-run-*`)")
