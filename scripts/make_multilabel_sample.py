"""Rebuild the bundled multi-label sample `finetune_nb/data/banking77_multilabel.jsonl` from banking77.

Support tickets often ask for several things at once. This sample makes such tickets from BANKING77's
single-intent queries: a ticket joins one to three queries of 10 card and top-up intents (its `topics` are
their intents), and one ticket in eight is a query of another intent, with no topic of the ten
(`"topics": []`, "none of these labels"). A few injected lines give each step real work, each listed in
`banking77_multilabel.anomalies.json`: copies with the same and with other topic sets, near copies, plain
string labels, a list naming a topic twice, and bad lines.

    python scripts/make_multilabel_sample.py ../shared/data/banking77/train.jsonl [OUT_DIR]

The output is deterministic: running it again gives the same bytes.
"""
import json, random, sys
from collections import defaultdict
from pathlib import Path

from planted import Planted

TOPICS = ["activate_my_card", "card_arrival", "change_pin", "lost_or_stolen_card", "card_payment_fee_charged",
          "contactless_not_working", "top_up_failed", "top_up_limits", "exchange_rate", "declined_card_payment"]
WEIGHTS = [6, 8, 5, 3, 4, 1, 5, 2, 4, 3]  # how often a topic is picked: some common, some rare
TICKETS, NONE_SHARE, SEED = 400, 1/8, 2377
SIZES = [(1, 0.5), (2, 0.37), (3, 0.13)]  # topics a ticket raises, and how often
JOIN = [" Also, ", " And ", " Another thing: ", " Plus ", " "]
OUT = Path(__file__).resolve().parents[1]/"finetune_nb"/"data"

def main(src, out=OUT):
    out = Path(out)
    rows = [json.loads(l) for l in Path(src).read_text(encoding="utf-8").splitlines() if l.strip()]
    by_intent = defaultdict(list)
    for r in rows: by_intent[r["category"]].append(r["text"].strip())
    rng = random.Random(SEED)
    for texts in by_intent.values(): rng.shuffle(texts)
    others = sorted(i for i in by_intent if i not in TOPICS)
    def query(intent):  # each query is used once
        return by_intent[intent].pop()
    def ticket():
        if rng.random() < NONE_SHARE: return query(rng.choice(others)), []
        k = rng.choices([k for k, _ in SIZES], [w for _, w in SIZES])[0]
        picked = []
        while len(picked) < k:
            t = rng.choices(TOPICS, WEIGHTS)[0]
            if t not in picked: picked.append(t)
        text = query(picked[0])
        for t in picked[1:]:
            q = query(t)
            text += rng.choice(JOIN) + (q[0].lower() + q[1:] if rng.random() < 0.5 else q)
        return text, sorted(picked)
    tickets = [ticket() for _ in range(TICKETS)]
    def row(text, topics): return json.dumps({"text": text, "topics": topics}, ensure_ascii=False).encode()
    lines = [row(t, l) for t, l in tickets]
    planted = Planted(lines, rng)
    insert = planted.insert

    def at(i): return lines.index(row(*tickets[i])) + 1
    multi = [i for i, (_, l) in enumerate(tickets) if len(l) >= 2]
    # copies: the same topics (kept once), and other topics (label noise)
    for i in multi[:3]: insert(at(i), row(tickets[i][0].upper() if i == multi[1] else tickets[i][0], tickets[i][1]),
                               "exact_duplicate", of=at(i), note="same topics")
    for i, how in [(multi[3], "one topic fewer"), (multi[4], "one topic fewer")]:
        insert(at(i), row(tickets[i][0], tickets[i][1][:-1]), "conflicting_topics", of=at(i), note=how)
    for i in multi[5:7]: insert(at(i), row(tickets[i][0] + " Thanks!", tickets[i][1]), "near_duplicate", of=at(i), note="appended 'Thanks!'")
    # the shapes a real export mixes in: a plain string for one topic, a topic named twice
    singles = [i for i, (_, l) in enumerate(tickets) if len(l) == 1]
    for i in singles[:3]:
        planted.replace(at(i), json.dumps({"text": tickets[i][0], "topics": tickets[i][1][0]}, ensure_ascii=False).encode(),
                        "string_label", note="a string, not a list: a one-topic set")
    i = multi[7]
    planted.replace(at(i), row(tickets[i][0], tickets[i][1] + tickets[i][1][:1]), "repeated_topic", note="a topic named twice: counted once")
    # bad lines
    insert(1, b'{"text": "My top up failed again and", "topics": ["top_up_fa', "bad_json", note="truncated line")
    insert(1, row("", ["change_pin"]), "empty_text", note="empty text")
    insert(1, json.dumps({"text": "Why was my card declined?", "tags": ["declined_card_payment"]}).encode(), "missing_label",
           note="topics under another key")
    insert(1, b"", "blank_line", note="empty line")

    planted.write(out, "banking77_multilabel")
    print(f"{len(lines)} lines ({len(tickets)} tickets, {len(planted.anomalies)} anomalies) -> {out}")

if __name__ == "__main__":
    main(*(sys.argv[1:] or ["../shared/data/banking77/train.jsonl"]))
