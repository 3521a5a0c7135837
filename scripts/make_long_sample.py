"""Rebuild the bundled long-document sample `finetune_nb/data/banking77_long.jsonl` from banking77.

Emails run past a model's window, and what they are about may sit anywhere in them. This sample puts 200
BANKING77 queries (the 8 intents of the bundled sample, 25 each) inside support emails of neutral sentences
(`long_docs.email`: ~330 tokens, the query at a uniformly random place), with a neutral `subject` line: the
two-field, long-text example of the notebooks (`--text-field subject --text-field body --long-texts chunks`).
Two bad lines give the reader's rules work: an email without its `body` (a subject alone is still a text)
and one whose label is missing.

    python scripts/make_long_sample.py ../shared/data/banking77/train.jsonl [OUT_DIR]

The output is deterministic: running it again gives the same bytes.
"""
import json, random, sys
from collections import defaultdict
from pathlib import Path

from long_docs import email
from planted import Planted

INTENTS = ["card_payment_fee_charged", "activate_my_card", "card_arrival", "change_pin", "card_delivery_estimate",
           "lost_or_stolen_card", "card_swallowed", "contactless_not_working"]  # the bundled sample's intents
PER_INTENT, SEED = 25, 2424
SUBJECTS = ["Quick question", "Help please", "Following up", "A query", "Hello", "Request", "Support needed", "Question",
            "Message from a customer", "Getting in touch", "Some help please", "(no subject)"]
OUT = Path(__file__).resolve().parents[1]/"finetune_nb"/"data"

def main(src, out=OUT):
    out = Path(out)
    by_intent = defaultdict(list)
    for l in Path(src).read_text(encoding="utf-8").splitlines():
        if l.strip() and (r := json.loads(l))["category"] in INTENTS: by_intent[r["category"]].append(r["text"].strip())
    rng = random.Random(SEED)
    rows = [(i, q) for i in INTENTS for q in rng.sample(sorted(by_intent[i]), PER_INTENT)]
    rng.shuffle(rows)
    def line(obj): return json.dumps(obj, ensure_ascii=False).encode()
    lines = [line({"subject": rng.choice(SUBJECTS), "body": email(q, rng), "category": i}) for i, q in rows]
    planted = Planted(lines, rng)
    planted.insert(1, line({"subject": "My card has not arrived", "category": "card_arrival"}), "missing_body",
                   note="no body: the subject alone is the text, the body an empty string")
    planted.insert(1, line({"subject": "Hello", "body": email("How do I change my PIN?", rng)}), "missing_label",
                   note="no category")
    planted.write(out, "banking77_long")
    print(f"{len(lines)} lines ({len(rows)} emails, {len(planted.anomalies)} anomalies) -> {out}")

if __name__ == "__main__":
    main(*sys.argv[1:])
