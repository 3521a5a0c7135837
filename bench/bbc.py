"""BBC News full text (Greene & Cunningham, ICML 2006) as one raw JSONL file for the long-text and two-field benchmarks.

    .venv/bin/python bench/bbc.py BBC_FOLDER OUT.jsonl

BBC_FOLDER is the release's `bbc/` folder (`<topic>/NNN.txt`: the headline on line 1, a blank line, the body), from
mlg.ucd.ie/datasets/bbc.html ("bbc-fulltext.zip"). Terms: for non-commercial and research purposes only; the BBC owns the
copyright of the articles. So the articles are never committed here or shipped: benchmarks print figures, not text.
Each line: `{"id": "<topic>/<NNN>", "title": headline, "body": the rest, "text": headline + blank line + body, "topic": topic}`,
in topic and file order. One file of the release (sport/199.txt) is Latin-1, not UTF-8: it is decoded as such (said on
stderr). The release holds 98 exact copies within their topics: the cleaning step drops them (ledgered), as any raw file's.
"""
import json, sys
from pathlib import Path


def articles(folder: Path):
    "(topic, file name, headline, body) of every article, in topic and file order."
    for topic in sorted(p for p in folder.iterdir() if p.is_dir()):
        for f in sorted(topic.glob("*.txt")):
            raw = f.read_bytes()
            try: text = raw.decode("utf-8")
            except UnicodeDecodeError:
                text = raw.decode("latin-1")
                print(f"{f}: not UTF-8, read as Latin-1", file=sys.stderr)
            head, _, body = text.strip().partition("\n")
            yield topic.name, f.stem, head.strip(), body.strip()


def convert(folder: Path, out: Path) -> int:
    "Write the JSONL file; returns its line count."
    n = 0
    with out.open("w", encoding="utf-8") as fh:
        for topic, stem, title, body in articles(Path(folder)):
            fh.write(json.dumps({"id": f"{topic}/{stem}", "title": title, "body": body, "text": f"{title}\n\n{body}", "topic": topic},
                                ensure_ascii=False) + "\n")
            n += 1
    return n


if __name__ == "__main__":
    folder, out = (Path(a) for a in sys.argv[1:3])
    print(f"{convert(folder, out)} articles -> {out}")
