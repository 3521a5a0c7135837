"""Untrusted models: a model's own code never runs, pickled weights go through torch's safe loader (which runs no code) or
are refused with a clear message, and what the pipeline publishes is safetensors."""
import json, os, shutil, subprocess, sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import write_topic_rows
from finetune_nb.clean import CleanSettings, run_clean
from finetune_nb.evaluation import EvalSettings, run_eval
from finetune_nb.testing import tiny_deberta
from finetune_nb.train import TrainSettings, run_train

FINETUNE_NB = str(Path(sys.executable).parent/"finetune-nb")


class RunsCode:
    "Unpickling this runs `touch <marker>`: what a malicious pytorch_model.bin does."
    def __init__(self, marker: Path): self.marker = str(marker)
    def __reduce__(self): return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    "A good base, the same with pickled weights only, one whose pickle runs code, and one that ships its own code."
    d = tmp_path_factory.mktemp("untrusted")
    good = tiny_deberta(d/"good", ["x", "y"])
    state = load_file(str(Path(good)/"model.safetensors"))
    pickled, evil, custom = d/"pickled", d/"evil", d/"custom"
    for folder in (pickled, evil, custom): shutil.copytree(good, folder)
    for folder in (pickled, evil): (folder/"model.safetensors").unlink()
    torch.save(state, pickled/"pytorch_model.bin")
    torch.save({**state, "x": RunsCode(d/"PICKLE_RAN")}, evil/"pytorch_model.bin")
    cfg = json.loads((custom/"config.json").read_text())
    cfg["auto_map"] = {"AutoConfig": "own_code.Config", "AutoModelForSequenceClassification": "own_code.Model"}
    (custom/"config.json").write_text(json.dumps(cfg))
    (custom/"own_code.py").write_text(f"open({str(d/'CODE_RAN')!r}, 'w').write('ran')\n"
                                      "from transformers import DebertaV2Config as Config, DebertaV2ForSequenceClassification as Model\n")
    data = write_topic_rows(d/"raw.jsonl")
    _, pub = run_clean(CleanSettings(input_path=str(data), label_field="label", target=str(d/"data"), near_dup_threshold=1.0))
    return {"dir": d, "good": good, "pickled": pickled, "evil": evil, "custom": custom, "raw": data, "dataset": pub.location}


def ran(models) -> list[str]: return [p.name for p in models["dir"].glob("*_RAN")]


def train(models, base, tmp_path):
    return run_train(TrainSettings(dataset=models["dataset"], base_model=str(models[base]), target=str(tmp_path/"model"),
                                   epochs=1, batch_size=4, val_size=0.2, wandb_mode="disabled", threads=1))


def test_a_pickle_that_runs_code_is_refused_before_any_work(models, tmp_path):
    res = subprocess.run([FINETUNE_NB, str(models["raw"]), "--label-field", "label", "--base-model", str(models["evil"]),
                          "--runs-dir", str(tmp_path/"runs"), "--wandb-mode", "disabled"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "its pytorch_model.bin holds more than tensors, so loading it could run code" in res.stderr
    assert "weights_only` set to `False`" not in res.stderr  # never the advice to turn the safe loader off
    assert not ran(models) and not (tmp_path/"runs").exists()


def test_the_steps_refuse_it_too_and_no_code_runs(models, tmp_path):
    with pytest.raises(ValueError, match="its weights file holds more than tensors, so loading it could run code; torch's safe loader"):
        train(models, "evil", tmp_path)
    with pytest.raises(ValueError, match="its weights file holds more than tensors"):
        run_eval(EvalSettings(model=str(models["evil"]), dataset=models["dataset"], wandb_mode="disabled",
                              output=str(tmp_path/"p.jsonl")))
    assert not ran(models)


def test_pickled_weights_of_plain_tensors_load_and_what_is_published_is_safetensors(models, tmp_path):
    _, pub = train(models, "pickled", tmp_path)
    files = sorted(p.name for p in Path(pub.location).iterdir())
    assert "model.safetensors" in files and not [f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl"))]


def test_a_models_own_code_never_runs(models, tmp_path):
    "`trust_remote_code` is never set: a model that ships its own modelling code is loaded with the library's classes."
    res, pub = train(models, "custom", tmp_path)
    m = run_eval(EvalSettings(model=pub.location, dataset=models["dataset"], wandb_mode="disabled", output=str(tmp_path/"p.jsonl")))
    assert m.metrics["rows"] > 0 and not ran(models)
    package = Path(__file__).parents[1]/"finetune_nb"
    assert not [p.name for p in package.glob("*.py") if "trust_remote_code=True" in p.read_text()]
