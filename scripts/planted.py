"""What the sample scripts share: a file's lines with planted faults, and the manifest that says where each one is."""
from __future__ import annotations

import json, random
from pathlib import Path


class Planted:
    "Lines (bytes) of a sample file and its manifest of anomalies (`line`, `kind`, `of`: 1-based), kept true as lines go in."
    def __init__(self, lines: list[bytes], rng: random.Random):
        self.lines, self.anomalies, self.rng = lines, [], rng

    def insert(self, after: int, payload: bytes, kind: str, **info) -> int:
        "Insert `payload` at a random position after line `after` (1-based); return its line."
        pos = self.rng.randint(after, len(self.lines))
        self.lines.insert(pos, payload)
        for a in self.anomalies:
            if a["line"] > pos: a["line"] += 1
            if a.get("of", 0) > pos: a["of"] += 1
        self.anomalies.append(dict(line=pos + 1, kind=kind, **info))
        return pos + 1

    def replace(self, line: int, payload: bytes, kind: str, **info):
        "Put `payload` in place of line `line` (1-based), and say so in the manifest."
        self.lines[line - 1] = payload
        self.anomalies.append(dict(line=line, kind=kind, **info))

    def write(self, out: Path, stem: str) -> None:
        "`<stem>.jsonl` (every line ends in a newline) and `<stem>.anomalies.json` (by line) in `out`."
        (out/f"{stem}.jsonl").write_bytes(b"\n".join(self.lines) + b"\n")
        (out/f"{stem}.anomalies.json").write_text(json.dumps(sorted(self.anomalies, key=lambda a: a["line"]), indent=1,
                                                             ensure_ascii=False) + "\n")
