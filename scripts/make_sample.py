"""Rebuild the bundled sample `finetune_nb/data/banking77_sample.jsonl` from banking77.

The sample is a seeded, stratified slice of banking77's training file (8 card-related intents,
40% of each, so the natural imbalance stays) with a few injected problems that each pipeline
step has to handle: exact and near duplicates, one text with conflicting labels, and bad lines.
Every injected line is listed in `banking77_sample.anomalies.json` beside the sample.

    python scripts/make_sample.py ../shared/data/banking77/train.jsonl [OUT_DIR]

The output is deterministic: running it again gives the same bytes.
"""
import json, random, sys
from collections import defaultdict
from pathlib import Path

from planted import Planted

INTENTS = ["card_payment_fee_charged", "activate_my_card", "card_arrival", "change_pin",
           "card_delivery_estimate", "lost_or_stolen_card", "card_swallowed", "contactless_not_working"]
FRACTION, SEED = 0.4, 77
OUT = Path(__file__).resolve().parents[1]/"finetune_nb"/"data"

def main(src, out=OUT):
    out = Path(out)
    rows = [json.loads(l) for l in Path(src).read_text(encoding="utf-8").splitlines() if l.strip()]
    by_label = defaultdict(list)
    for r in rows:
        if r["category"] in INTENTS: by_label[r["category"]].append(r)
    rng = random.Random(SEED)
    picked = []
    for lbl in INTENTS: picked += rng.sample(by_label[lbl], round(len(by_label[lbl])*FRACTION))
    rng.shuffle(picked)
    lines = [json.dumps({"text": r["text"], "category": r["category"]}, ensure_ascii=False).encode() for r in picked]
    planted = Planted(lines, rng)
    insert = planted.insert

    def row(text, label): return json.dumps({"text": text, "category": label}, ensure_ascii=False).encode()
    def pick(i): return picked[i]["text"], picked[i]["category"], lines.index(row(picked[i]["text"], picked[i]["category"]))+1

    # exact duplicates: identical, or equal after NFKC / whitespace / case normalisation
    for i, f, how in [(3, lambda t: t, "identical"), (11, str.lower, "lower-cased"),
                      (19, lambda t: "  " + t.replace(" ", "  ") + " ", "extra whitespace"),
                      (27, lambda t: t.replace(" ", "\u00a0", 2), "no-break spaces (NFKC)")]:
        t, l, at = pick(i)
        insert(at, row(f(t), l), "exact_duplicate", of=at, note=how)
    # near duplicates: one or two words changed, in longer texts (so one edit stays "near")
    longer = [i for i, r in enumerate(picked) if len(r["text"].split()) >= 12]
    for i, f, how in [(longer[0], lambda t: t + " Thanks!", "appended 'Thanks!'"),
                      (longer[1], lambda t: "Hi, " + t, "prefixed 'Hi,'"),
                      (longer[2], lambda t: t.replace(" my ", " the ", 1) if " my " in t else t.replace(" ", " really ", 1), "one word changed"),
                      (longer[3], lambda t: t.rstrip("?.!") + " please?", "appended 'please'")]:
        t, l, at = pick(i)
        insert(at, row(f(t), l), "near_duplicate", of=at, note=how)
    # one text with two labels: a card_arrival query also filed as card_delivery_estimate
    j = next(i for i, r in enumerate(picked) if r["category"] == "card_arrival")
    t, l, at = pick(j)
    insert(at, row(t, "card_delivery_estimate"), "conflicting_label", of=at, note=f"was {l}")
    # bad lines
    insert(1, b'{"text": "Where is my new card? It has been ages", "category": "card_arr', "bad_json", note="truncated line")
    insert(1, row("How long does delivery take?", "card_delivery_estimate").replace(b'"category"', b'"intent"'), "missing_label", note="label under another key")
    insert(1, row("", "change_pin"), "empty_text", note="empty text")
    insert(1, b'["Can I change my PIN at an ATM?", "change_pin"]', "not_an_object", note="JSON array")
    insert(1, '{"text": "My card was swallowed at the caf\u00e9 ATM", "category": "card_swallowed"}'.encode("latin-1"), "not_utf8", note="latin-1 encoded")
    insert(1, b"", "blank_line", note="empty line")

    planted.write(out, "banking77_sample")
    print(f"{len(lines)} lines ({len(picked)} original rows, {len(planted.anomalies)} injected) -> {out}")

if __name__ == "__main__":
    main(*(sys.argv[1:] or ["../shared/data/banking77/train.jsonl"]))
