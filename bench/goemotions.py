"""GoEmotions as a raw multi-label JSONL file, for the real-data run of the multi-label path (issue 23).

GoEmotions (Demszky et al., 2020, https://arxiv.org/abs/2005.00547; Google Research, Apache License 2.0): 58k Reddit
comments, each with the emotions (27 and `neutral`) that most raters saw; the "simplified" release holds 54,263 of them in
train/dev/test TSV files (`text<TAB>label ids<TAB>comment id`) with `labels.txt`. This script joins the three files into one
JSONL file of `{"id", "text", "emotions": [names], "goemotions_split"}` — the shape a team would hand to `finetune-nb`, which
then cleans, splits (iteratively stratified) and trains on it itself. Nothing is downloaded here: point it at the `data/original`
folder of a checkout (github.com/google-research/google-research `goemotions/data`, or monologg/GoEmotions-pytorch `data/original`).

    python bench/goemotions.py PATH/TO/data/original /tmp/goemotions.jsonl
"""
from __future__ import annotations

import argparse, csv, json, sys
from pathlib import Path


def convert(folder: Path, out: Path) -> int:
    "Write the JSONL file; returns the number of lines."
    names = folder.joinpath("labels.txt").read_text(encoding="utf-8").split()
    n = 0
    with out.open("w", encoding="utf-8") as f:
        for split in ("train", "dev", "test"):
            with folder.joinpath(f"{split}.tsv").open(encoding="utf-8", newline="") as src:
                for text, ids, cid in csv.reader(src, delimiter="\t", quoting=csv.QUOTE_NONE):
                    f.write(json.dumps({"id": cid, "text": text, "emotions": [names[int(i)] for i in ids.split(",")],
                                        "goemotions_split": split}, ensure_ascii=False) + "\n")
                    n += 1
    return n


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path, help="GoEmotions' data/original folder: train.tsv, dev.tsv, test.tsv, labels.txt")
    p.add_argument("out", type=Path, help="JSONL file to write")
    a = p.parse_args()
    print(f"{convert(a.folder, a.out)} lines written to {a.out}", file=sys.stderr)
