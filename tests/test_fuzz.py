"""Every line accounted for, at volume: 1,000 generated files per run (4 shards of 250, spread over the test workers), each as
hostile as users' files get — nested dotted fields, lists, byte-order marks, CRLF and lone CR, U+2028 and U+0085 inside
strings, very long lines, emoji and right-to-left text, texts equal only after NFKC, case and whitespace, integral and
non-integral float labels, labels that look like formulas to matplotlib. For each: train + test + ledger = the input's
lines, the published splits come back exactly through `datasets.load_dataset`, and cleaning it again with the same seed
publishes byte-identical files. The class-balance picture (0.2 s, twice a file) is drawn by a stand-in that records its
input; every kind of label the shards publish is then drawn for real, twice, to the same bytes."""
import json, os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from finetune_nb.clean import CleanSettings, clean, publish_dataset
from finetune_nb.data import REASONS, load_clean_dataset

SHARDS, PER_SHARD = 4, int(os.environ.get("FUZZ_PER_SHARD", 250))  # 1,000 files a run; fewer by hand

WORDS = ["card", "pin", "lost", "my", "new", "where", "is", "fee", "the", "charged", "activate", "help",
         "💳", "🙂👍🏽", "بطاقتي", "مفقودة", "כרטיס", "אבד", "ｃａｒｄ", "ＰＩＮ", "CARD", "Lost", "naïve", "ﬁle", "Ⅸ"]
ODD = ["\u2028", "\u0085", "\u2029", "\r", "\t", "  ", "\u00a0", '"', ",", "\\", "'", "\x0b"]  # inside the JSON strings

word = st.sampled_from(WORDS)
text = st.one_of(
    st.lists(st.one_of(word, word.map(str.upper), word.map(lambda w: f" {w}  ")), min_size=1, max_size=8).map(" ".join),
    st.tuples(st.lists(word, min_size=1, max_size=5).map(" ".join), st.sampled_from(ODD), st.lists(word, min_size=1, max_size=5)
              .map(" ".join)).map("".join),
    st.tuples(word, st.integers(2_000, 20_000)).map(lambda t: (t[0] + " ") * t[1]),  # very long lines (10k-200k characters)
)
odd_label = st.sampled_from(["007", "NA", "null", " b", "B", 3, 2.0, -1, 1.5, True, ["a"], {"x": 1}, None, "",
                             "$\\frac{$", "$^$", "50% $x$", "a\nb"])
label = st.integers(0, 9).flatmap(lambda k: st.sampled_from(["a", "b", "c"]) if k < 7 else odd_label)
row = st.tuples(text, label)
messy = st.sampled_from([b"", b"   ", b"\xff\xfe", b"\xef\xbb\xbf{\"t\": \"bom\", \"l\": \"a\"}", b"{", b"[]", b"null", b"42",
                         b'{"t": null, "l": "a"}', b'{"t": "x"}', b'{"l": "a"}', b'{"t": ["x"], "l": "a"}', b'{"t": "  ", "l": "a"}',
                         b'{"t": "raw\rcr", "l": "a"}', b'{"t":\r"split by a lone CR", "l": "a"}', b"\xc3\x28"])
line = st.integers(0, 9).flatmap(lambda k: row if k < 8 else messy)  # 4 lines in 5 are rows
ending = st.sampled_from([b"\n", b"\n", b"\r\n"])
hostile_file = st.integers(1, 40).flatmap(lambda n: st.lists(st.tuples(line, ending), min_size=n, max_size=n))


def encode(x, nested: bool) -> bytes:
    if isinstance(x, bytes): return x
    t, l = x
    return json.dumps({"m": {"t": t, "l": l}, "t": 0} if nested else {"t": t, "l": l}, ensure_ascii=False).encode()


DRAWN = []  # the label counts each publication drew


@pytest.fixture(scope="module", autouse=True)
def real_class_balance():
    "A stand-in for the class-balance picture while the shards run (its bytes follow its input); the real one for the last test."
    import finetune_nb.clean as C
    real = C.class_balance
    def stand_in(labels, path, **kw):
        DRAWN.append(labels)
        Path(path).write_bytes(json.dumps(labels, sort_keys=True).encode())
        return Path(path)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(C, "class_balance", stand_in)
        yield real


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


REFUSED = (0.05, 0.30)  # the share of generated files refused before publishing, asserted per shard (about 0.15 is usual)


@pytest.mark.parametrize("shard", range(SHARDS))
def test_every_line_is_accounted_for_and_the_publication_is_exact(tmp_path_factory, shard):
    outcomes = {"published": 0, "refused": 0}

    @settings(max_examples=PER_SHARD, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(lines=hostile_file, bom=st.booleans(), nested=st.booleans(), last_newline=st.booleans(),
           threshold=st.sampled_from([0.6, 0.8, 1.0]), noise=st.sampled_from(["drop", "majority"]), seed=st.integers(0, 2**32 - 1))
    def one_file(lines, bom, nested, last_newline, threshold, noise, seed):
        d = tmp_path_factory.mktemp(f"fuzz{shard}")
        data = (b"\xef\xbb\xbf" if bom else b"") + b"".join(encode(x, nested) + end for x, end in lines)
        if not last_newline: data = data.rstrip(b"\r\n")
        (d/"raw.jsonl").write_bytes(data)
        n_lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
        fields = ("m.t", "m.l") if nested else ("t", "l")
        s = CleanSettings(input_path=str(d/"raw.jsonl"), text_field=fields[0], label_field=fields[1], near_dup_threshold=threshold,
                          noise=noise, seed=seed)
        try: res = clean(s)
        except ValueError as e:  # only the documented refusals, each naming the file
            assert "raw.jsonl" in str(e) or "split" in str(e), e
            assert any(m in str(e) for m in ("cannot be split", "no rows left", "is in none of", "JSON object", "is empty")), e
            outcomes["refused"] += 1
            return
        outcomes["published"] += 1
        assert len(res.train) + len(res.test) + len(res.ledger) == n_lines
        assert sorted([*res.train.id, *res.test.id, *res.ledger.line]) == list(range(1, n_lines + 1))
        assert set(res.ledger.reason) <= set(REASONS)

        first = Path(publish_dataset(res, d/"a").location)
        from datasets import load_dataset
        for back in (load_clean_dataset(first), load_dataset(str(first))):  # as the steps load it, and as a Hub user would
            for split, df in (("train", res.train), ("test", res.test)):
                got = back[split].to_pandas().sort_values("id")
                want = df.sort_values("id")
                assert got["id"].tolist() == want["id"].tolist() and got["text"].tolist() == want["text"].tolist()
                as_read = [l if isinstance(l, str) else tuple(l) for l in got["label"]]  # a label set comes back as a list
                assert as_read == want["label"].tolist()  # "NA", "null", "007" and " b" stay strings, as written; sets stay sets

        again = Path(publish_dataset(clean(s), d/"b").location)
        assert files_of(first) == files_of(again)  # the same seed publishes the same bytes

    one_file()
    n = sum(outcomes.values())
    print(f"fuzz shard {shard}: {outcomes['published']} published, {outcomes['refused']} refused of {n}")
    assert n == PER_SHARD  # every generated file was tried: none skipped
    assert REFUSED[0]*n <= outcomes["refused"] <= REFUSED[1]*n, outcomes  # neither everything refused, nor nothing ever refused


def test_two_processes_with_other_hash_seeds_publish_the_same_bytes(tmp_path):
    "The same files cleaned and published by two processes whose str hashes differ (PYTHONHASHSEED): byte-identical folders."
    import random, subprocess, sys
    rng = random.Random(7)
    kinds = ["a", "b", "c", "007", "NA", " b", "B", 3, 2.0, "$\\frac{$", "50% $x$", "a\nb"]
    for i in range(12):  # hostile rows: many labels (sets and dicts of them are where hash order would show), twins, odd bytes
        rows = [{"t": " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 6))) + rng.choice(ODD + [""]),
                 "l": rng.sample(kinds, rng.randint(0, 3)) if i % 3 == 0 else rng.choice(kinds)}  # every third file: label sets
                for _ in range(rng.randint(30, 80))]
        (tmp_path/f"raw{i}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    script = ("import sys, pathlib\nfrom finetune_nb.clean import CleanSettings, clean, publish_dataset\n"
              "src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])\n"
              "for f in sorted(src.glob('raw*.jsonl')):\n"
              "    try: res = clean(CleanSettings(input_path=str(f), text_field='t', label_field='l', near_dup_threshold=0.8))\n"
              "    except ValueError: continue\n"
              "    publish_dataset(res, out/f.stem)\n")
    for seed in ("1", "2"):
        res = subprocess.run([sys.executable, "-c", script, str(tmp_path), str(tmp_path/f"out{seed}")], capture_output=True, text=True,
                             timeout=600, env={**os.environ, "PYTHONHASHSEED": seed})
        assert res.returncode == 0, res.stderr[-2000:]
    a, b = files_of(tmp_path/"out1"), files_of(tmp_path/"out2")
    assert len(a) >= 12*5 and a == b, sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))[:5]


def test_every_published_label_is_drawn_and_draws_the_same_bytes(real_class_balance, tmp_path):
    "Every kind of label the shards publish (formula-like ones too), from a publication of this test's own, drawn for real twice."
    kinds = ["a", "b", "c", "007", "NA", "null", " b", "B", 3, 2.0, -1, 1.5, "$\\frac{$", "$^$", "50% $x$", "a\nb"]
    rows = [{"t": f"text {w} {i}", "l": l} for i, l in enumerate(kinds) for w in ("alpha", "bravo", "charlie", "delta", "echo")]
    (tmp_path/"raw.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    DRAWN.clear()
    publish_dataset(clean(CleanSettings(input_path=str(tmp_path/"raw.jsonl"), text_field="t", label_field="l",
                                        near_dup_threshold=1.0)), tmp_path/"published")
    (seen,) = DRAWN  # what the publication drew: every label kind, with its counts
    assert len(seen) == len(kinds) - 1 and {"$\\frac{$", "$^$", "50% $x$"} <= set(seen)  # 1.5 is no label: in the ledger
    for chunk in range(0, len(seen), 40):
        part = dict(list(seen.items())[chunk:chunk + 40])
        a, b = real_class_balance(part, tmp_path/"a.png"), real_class_balance(part, tmp_path/"b.png")
        assert a.read_bytes()[:4] == b"\x89PNG" and a.read_bytes() == b.read_bytes()
