"""Integration, fault and property tests of the cleaning step (unit examples live in nbs/01_clean.ipynb)."""
import ast, json, re
from collections import Counter
from dataclasses import fields
from pathlib import Path

import numpy as np
import pandas as pd
import papermill as pm
import pytest
from hypothesis import HealthCheck, event, given, settings as hsettings, strategies as st

from conftest import NBS, assert_parameters_mirror
from finetune_nb.clean import CleanSettings, clean, drop_duplicates, normalize_text, publish_dataset, run_clean, tfidf_vectors
from finetune_nb.data import REASONS, load_clean_dataset, read_jsonl
from finetune_nb.core import sample_data
from finetune_nb.testing import HubStub


def write_lines(path: Path, lines, end=b"\n") -> Path:
    path.write_bytes(b"\n".join(l if isinstance(l, bytes) else l.encode() for l in lines) + end)
    return path


def j(**kw) -> str: return json.dumps(kw)


def published_lines(folder: Path) -> int:
    "Rows of train.csv + test.csv + lines of dropped.jsonl, read back the way a person would."
    csv = sum(len(pd.read_csv(folder/f"{s}.csv", dtype=str, keep_default_na=False)) for s in ("train", "test"))
    return csv + len([json.loads(l) for l in (folder/"dropped.jsonl").read_text().splitlines()])


BANKING = Path(__file__).resolve().parents[2]/"shared"/"data"/"banking77"
DEDUP = {"exact_duplicate", "near_duplicate", "conflicting_labels", "minority_label", "label_tie"}


def reference_dedup(df: pd.DataFrame, threshold: float | None, noise: str) -> tuple[list[int], dict]:
    "The deduplication rules, written plainly on every cosine: kept ids, and {line: (reason, duplicate_of)}."
    keys = [normalize_text(t) for t in df.text]
    code = {k: n for n, k in enumerate(dict.fromkeys(keys))}
    G = (lambda X: (X @ X.T).toarray())(tfidf_vectors(list(code))) if threshold is not None and len(code) > 1 else np.eye(len(code))
    t = 2.0 if threshold is None else threshold - 1e-9  # exact copies only: no cosine is enough
    rows = [(r.id, r.label, code[k]) for r, k in zip(df.itertuples(), keys)]  # in input order
    alive, out = list(range(len(rows))), {}
    while True:  # group the rows that are left; settle the groups whose labels disagree; again until none does
        leaders, lead = [], {}
        for b in dict.fromkeys(rows[p][2] for p in alive):  # keys in the order of their first remaining row
            hit = np.nonzero(G[b, leaders] >= t)[0] if leaders else []
            lead[b] = leaders[hit[0]] if len(hit) else b
            if lead[b] == b: leaders.append(b)
        groups = {}
        for p in alive: groups.setdefault(lead[rows[p][2]], []).append(p)
        mixed = [g for g in groups.values() if len({rows[p][1] for p in g}) > 1]
        if not mixed: break
        gone = set()
        for g in mixed:
            counts = Counter(rows[p][1] for p in g).most_common()
            if noise == "drop" or counts[0][1] == counts[1][1]:
                reason = "conflicting_labels" if noise == "drop" else "label_tie"
                out.update({rows[p][0]: (reason, None if p == g[0] else rows[g[0]][0]) for p in g}); gone |= set(g)
            else:
                winner = next(p for p in g if rows[p][1] == counts[0][0])
                out.update({rows[p][0]: ("minority_label", rows[winner][0]) for p in g if rows[p][1] != counts[0][0]})
                gone |= {p for p in g if rows[p][1] != counts[0][0]}
        alive = [p for p in alive if p not in gone]
    kept = []
    for g in groups.values():
        kept.append(rows[g[0]][0])
        out.update({rows[p][0]: ("exact_duplicate" if rows[p][2] == rows[g[0]][2] else "near_duplicate", rows[g[0]][0]) for p in g[1:]})
    return sorted(kept), out


def assert_same_as_brute_force(df: pd.DataFrame, threshold: float | None, noise: str):
    "drop_duplicates keeps the rows, and ledgers the reasons and kept rows, that the plain rules give on every cosine."
    kept, ledger = drop_duplicates(df, threshold, noise)
    want_kept, want = reference_dedup(df, threshold, noise)
    assert kept.id.tolist() == want_kept
    assert {e["line"]: (e["reason"], e.get("duplicate_of")) for e in ledger} == want


def assert_dedup_promises(rows: pd.DataFrame, ledger: pd.DataFrame, threshold: float):
    """What the ledger promises, checked on the final rows alone: no two rows kept by deduplication are within the threshold;
    each exact or near duplicate names the first kept row it reaches; every stated similarity is the cosine to the row named."""
    keys = rows.text.map(normalize_text).to_numpy()
    code = {k: n for n, k in enumerate(dict.fromkeys(keys))}
    X, key_of = tfidf_vectors(list(code)), dict(zip(rows.id, (code[k] for k in keys)))
    def cos(a, b): return np.asarray(X[[key_of[i] for i in a]].multiply(X[[key_of[i] for i in b]]).sum(axis=1)).ravel()
    kept = sorted(set(rows.id) - set(ledger.line[ledger.reason.isin(DEDUP)]))
    K = X[[key_of[i] for i in kept]]
    C = (K @ K.T).tocoo()
    close = (C.row != C.col) & (C.data >= threshold - 1e-9)
    assert not close.any(), f"kept rows {kept[C.row[close][0]]} and {kept[C.col[close][0]]} are within the threshold"
    assert len({key_of[i] for i in kept}) == len(kept)  # nor exact copies of each other
    dups = ledger[ledger.reason.isin(["exact_duplicate", "near_duplicate"])]
    if len(dups):
        S = (X[[key_of[i] for i in dups.line]] @ K.T).toarray()
        S[np.array([key_of[i] for i in dups.line])[:, None] == np.array([key_of[i] for i in kept])[None, :]] = 1.0
        first = [kept[np.nonzero(row >= threshold - 1e-9)[0][0]] for row in S]  # kept rows are in input order
        assert dups.duplicate_of.astype(int).tolist() == first
    stated = ledger.dropna(subset=["similarity"])
    if len(stated):
        assert np.abs(np.minimum(cos(stated.line, stated.duplicate_of.astype(int)), 1) - stated.similarity.to_numpy()).max() <= 1e-6
        near = stated[stated.reason == "near_duplicate"]
        assert (near.similarity.to_numpy() >= threshold).all()


def test_parameters_cell_mirrors_the_settings_dataclass():
    assert_parameters_mirror("01_clean.ipynb", CleanSettings)


def test_every_ledger_reason_is_reachable(tmp_path):
    lines = [j(text="keep me one", label="a"), j(text="keep me two", label="a"), j(text="another b text", label="b"),
             j(text="b text the second", label="b"), j(text="third for b here", label="b"),
             b"", b"\xc3\x28", "{nope", "[1]", j(label="a"), j(text=None, label="a"), j(text=1, label="a"),
             j(text="no label"), j(text="empty label", label=""), j(text="object label", label={"name": "a"}),
             j(text="c row", label="c"), j(text="excluded", label="x"),
             j(text="Keep me ONE", label="a"),  # exact duplicate of line 1
             j(text="the same words here again and again", label="b"), j(text="the same words here again and again!", label="b"),
             j(text="a conflicted text", label="a"), j(text="A conflicted text", label="b"),
             j(text="lonely label", label="solo"), j(text="big d 1", label="d"), j(text="big d two", label="d"),
             j(text="big d three", label="d"), j(text="e is small", label="e")]
    f = write_lines(tmp_path/"raw.jsonl", lines)
    res = clean(CleanSettings(input_path=str(f), label_field="label", labels_include=[], labels_exclude=["x"],
                              min_per_label=0, max_per_label=2, near_dup_threshold=0.8, test_size=0.5))
    reasons = set(res.ledger.reason)
    # min_per_label, label filters by include, and the majority rules need other settings:
    res2 = clean(CleanSettings(input_path=str(f), label_field="label", labels_include=["a", "b", "c", "d", "e", "solo"],
                               min_per_label=2, noise="majority", test_size=0.5))
    lines3 = [j(text="tie text", label="p"), j(text="TIE text", label="q"), j(text="maj text", label="p"),
              j(text="maj text", label="q"), j(text="Maj text", label="q")] + \
             [j(text=f"filler {w}", label=l) for w, l in zip("abcdefgh", "pqpqpqpq")]
    res3 = clean(CleanSettings(input_path=str(write_lines(tmp_path/"r3.jsonl", lines3)), label_field="label",
                               noise="majority", test_size=0.4))
    reasons |= set(res2.ledger.reason) | set(res3.ledger.reason)
    assert reasons == set(REASONS), set(REASONS) - reasons
    for r in (res, res2, res3):
        assert len(r.train) + len(r.test) + len(r.ledger) == r.stats["input"]["lines"]


def test_line_rules(tmp_path):
    lines = ["\ufeff" + j(text="bom first", label="a"), j(text="crlf", label="a") + "\r",
             j(text="para\u2029and line\u2028sep", label="b"), j(text="next", label="b")]
    df, ledger, n = read_jsonl(write_lines(tmp_path/"r.jsonl", lines, end=b""), "text", "label")
    assert n == 4 and not ledger
    assert df.text.tolist() == ["bom first", "crlf", "para\u2029and line\u2028sep", "next"]
    assert read_jsonl(write_lines(tmp_path/"r2.jsonl", lines, end=b"\n\n"), "text", "label")[2] == 5  # one blank line more


def test_nested_fields_through_papermill(tmp_path):
    rows = [{"body": {"text": f"{w} question about my {thing}"}, "annotation": {"coarse": thing, "fine": w}}
            for thing in ("card", "pin", "loan") for w in ("first", "second", "third", "fourth", "fifth", "sixth")]
    f = write_lines(tmp_path/"nested.jsonl", [json.dumps(r) for r in rows] + ["not json"])
    out = tmp_path/"out.ipynb"
    pm.execute_notebook(NBS/"01_clean.ipynb", out, cwd=str(NBS), progress_bar=False, kernel_name="python3",
                        parameters=dict(input_path=str(f), text_field="body.text", label_field="annotation.coarse",
                                        target=str(tmp_path/"ds"), test_size=0.3))
    stats = json.loads((tmp_path/"ds"/"stats.json").read_text())
    assert stats["splits"] == {"train": 12, "test": 6} and stats["dropped"] == {"bad_json": 1}
    assert published_lines(tmp_path/"ds") == 19
    ds = load_clean_dataset(tmp_path/"ds")
    assert sorted(set(ds["test"]["label"])) == ["card", "loan", "pin"]


def test_reloading_a_same_named_folder_gives_its_own_rows(tmp_path):
    "datasets caches local folders by name; load_clean_dataset must not return another folder's rows."
    for k, labels in enumerate((["x", "y"], ["p", "q"])):
        rows = [j(text=f"{w} {lab} text {k}", label=lab) for lab in labels for w in ("one", "two", "three", "four", "five")]
        _, pub = run_clean(CleanSettings(input_path=str(write_lines(tmp_path/f"r{k}.jsonl", rows)), label_field="label",
                                         target=str(tmp_path/f"run{k}"/"dataset"), test_size=0.4))
        assert set(load_clean_dataset(pub.location)["train"]["label"]) == set(labels)


def test_split_is_stratified_on_the_sample():
    res = clean(CleanSettings())
    for label, c in res.stats["labels"].items():
        n = c["train"] + c["test"]
        assert abs(c["test"] - 0.2*n) <= 1, (label, c)
    assert not set(res.train.id) & set(res.test.id)


def test_reference_test_leakage(tmp_path):
    train_lines = [j(text=f"please tell me how to {v} my {o} today", label=o) for v in ("open", "close", "freeze", "view")
                   for o in ("card", "account", "loan")]
    near = [("view", "loan"), ("close", "card"), ("freeze", "account"), ("open", "loan")]  # 3 of the 12 rows go to test:
    ref = write_lines(tmp_path/"official.jsonl", [j(text="Please tell me how to OPEN my card today", label="card"),  # one of these 4 is in train
                                                 j(text="something else entirely", label="card"), "oops",
                                                 *[j(text=f"today please tell me how to {v} my {o}", label=o) for v, o in near]])
    res = clean(CleanSettings(input_path=str(write_lines(tmp_path/"r.jsonl", train_lines)), label_field="label",
                              reference_test=str(ref), near_dup_threshold=0.9, test_size=0.25))
    found = res.stats["leakage"]["reference_test"]
    in_train = set(res.train.text)
    hits = {x["id"]: x for x in found["in_train"]}
    assert (1 in hits) == ("please tell me how to open my card today" in in_train) and (1 not in hits or hits[1]["exact"])
    assert 2 not in hits and found["unreadable_lines"] == 1 and found["rows"] == 6
    for line, (v, o) in enumerate(near, start=4):  # each near copy is found exactly when its original row is in train
        assert (line in hits) == (f"please tell me how to {v} my {o} today" in in_train), line
        if line in hits: assert not hits[line]["exact"] and hits[line]["similarity"] >= 0.9  # the same words, another order
    assert sum(not x["exact"] for x in found["in_train"]) >= 1  # a near match was found: the check is not vacuous
    for x in found["in_train"]: assert res.train.set_index("id").loc[x["train_id"], "text"] in in_train


def test_test_rows_near_train_rows_are_reported(tmp_path, monkeypatch):
    "With near-duplicate removal switched off, the leakage check must catch the near copies that cross the split."
    import finetune_nb.clean as C
    monkeypatch.setattr(C, "drop_duplicates", lambda df, threshold, noise, **kw: (df, []))
    rows = [j(text=f"how do i {v} my {o} card please", label=o) for v in ("freeze", "unfreeze", "order", "cancel", "replace")
            for o in ("debit", "credit")]
    res = clean(CleanSettings(input_path=str(write_lines(tmp_path/"r.jsonl", rows)), label_field="label", test_size=0.4))
    leaks = res.stats["leakage"]["test_in_train"]
    assert leaks and {x["id"] for x in leaks} <= set(res.test.id) and {x["train_id"] for x in leaks} <= set(res.train.id)
    assert all(x["similarity"] >= 0.8 for x in leaks)


def test_lines_no_parser_takes_are_bad_json(tmp_path):
    lines = [j(text="ok one", label="a"), '{"text": "big", "label": ' + "9"*5000 + "}", "[" * 100_000, j(text="ok two", label="a")]
    df, ledger, n = read_jsonl(write_lines(tmp_path/"r.jsonl", lines), "text", "label")
    assert n == 4 and [(e["line"], e["reason"]) for e in ledger] == [(2, "bad_json"), (3, "bad_json")]


def test_majority_counts_every_copy_and_ledger_ids_are_ints(tmp_path):
    t = "my card was charged twice for the same coffee purchase"
    rows = [j(text=t, label="x")]*3 + [j(text=t + " again", label="y"), "{bad"] + \
           [j(text=f"filler text number {w}", label=l) for w, l in zip("abcdefgh", "xyxyxyxy")]
    res, pub = run_clean(CleanSettings(input_path=str(write_lines(tmp_path/"r.jsonl", rows)), label_field="label",
                                       noise="majority", target=str(tmp_path/"ds"), test_size=0.4))
    led = {e["line"]: e for e in map(json.loads, (tmp_path/"ds"/"dropped.jsonl").read_text().splitlines())}
    assert 1 in set(res.train.id) | set(res.test.id)
    assert [(led[i]["reason"], led[i]["duplicate_of"]) for i in (2, 3, 4)] == [("exact_duplicate", 1)]*2 + [("minority_label", 1)]
    assert isinstance(led[2]["duplicate_of"], int) and "duplicate_of" not in led[5]


def test_no_pair_is_lost_to_a_full_neighbour_list(tmp_path):
    "Two templates of 61 texts: every row has 60 neighbours closer than the 0.85 across them (a top-50 search keeps none)."
    base = " ".join(f"w{i}" for i in range(200))
    rows = [j(text=f"{base} a{i}", label="x") for i in range(61)] + [j(text=f"{base} b0 b1 b2 b3 b4 b5 b{i + 6}", label="y") for i in range(61)]
    df = read_jsonl(write_lines(tmp_path/"r.jsonl", rows), "text", "label")[0]
    kept, ledger = drop_duplicates(df, 0.8)
    assert kept.empty and {e["reason"] for e in ledger} == {"conflicting_labels"}  # one group, two labels: all go
    assert {e["line"]: e.get("duplicate_of") for e in ledger} == {i: (None if i == 1 else 1) for i in range(1, 123)}
    assert all(abs(e["similarity"] - 0.8526) < 1e-4 for e in ledger if e["line"] > 61)
    assert_same_as_brute_force(df, 0.8, "drop")


def test_csv_keeps_awkward_strings_quoted(tmp_path):
    rows = [j(text=t, label=l) for t, l in [("NA", "007"), ("None", "007"), ("null", "True"), ("plain words", "True")]]
    run_clean(CleanSettings(input_path=str(write_lines(tmp_path/"r.jsonl", rows)), label_field="label",
                            target=str(tmp_path/"ds"), test_size=0.5, near_dup_threshold=1.0))
    both = pd.concat([pd.read_csv(tmp_path/"ds"/f"{s}.csv", dtype=str, keep_default_na=False) for s in ("train", "test")])
    assert sorted(both.text) == ["NA", "None", "null", "plain words"] and set(both.label) == {"007", "True"}
    assert '"007"' in (tmp_path/"ds"/"train.csv").read_text()


def test_missing_reference_file_is_named_before_work(tmp_path, monkeypatch):
    import finetune_nb.clean as C
    monkeypatch.setattr(C, "read_jsonl", lambda *a, **k: pytest.fail("reading started"))
    with pytest.raises(FileNotFoundError, match=r"nope.jsonl: no such file \(reference_test\)"):
        clean(CleanSettings(reference_test=str(tmp_path/"nope.jsonl")))


def test_target_is_refused_before_any_work(tmp_path, monkeypatch):
    (tmp_path/"ds").mkdir(); (tmp_path/"ds"/"old").write_text("x")
    import finetune_nb.clean as C
    monkeypatch.setattr(C, "clean", lambda s: pytest.fail("cleaning started"))
    with pytest.raises(FileExistsError, match="overwrite=True"): run_clean(CleanSettings(target=str(tmp_path/"ds")))


def test_publish_to_hub_stub(tmp_path, no_secrets, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_" + "D"*34)
    monkeypatch.chdir(tmp_path)
    res = clean(CleanSettings())
    with HubStub({"hf_" + "D"*34: ("ada", "write")}) as hub:
        pub = publish_dataset(res, "hf://datasets/ada/banking-clean", private=True)
        files = hub.files("hf://datasets/ada/banking-clean")
    parquet = sorted(f for f in files if f.startswith("data/"))
    assert sorted(set(files) - set(parquet)) == ["README.md", "class_balance.png", "dropped.jsonl", "stats.json", "test.csv", "train.csv"]
    assert [re.fullmatch(r"data/(test|train)-[0-9a-f]{16}\.parquet", f).group(1) for f in parquet] == ["test", "train"]
    assert files["class_balance.png"][:4] == b"\x89PNG" and b"![Rows per label, as read and as published](class_balance.png)" in files["README.md"]
    assert files["README.md"].startswith(b"---\n") and all(f.encode() in files["README.md"] for f in parquet)
    assert b"hf_" + b"D"*34 not in b"".join(files.values())
    assert hub.repos[("dataset", "ada/banking-clean")]["private"] and pub.commit


def test_missing_file_and_field_errors_name_file_and_fields(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"): clean(CleanSettings(input_path=str(tmp_path/"nope.jsonl")))
    with pytest.raises(ValueError, match=r"banking77_sample.jsonl: label_field 'label' is in none of .* fields present: text, category"):
        clean(CleanSettings(label_field="label"))

@pytest.mark.skipif(not BANKING.exists(), reason="needs ../shared/data/banking77 (CI and developer machines have it)")
def test_banking77_ledger_means_what_it_says():
    "On the real 10k-line file: every near_duplicate is within the threshold of a kept row, at the cosine it states."
    res = clean(CleanSettings(input_path=str(BANKING/"train.jsonl")))
    rows = read_jsonl(BANKING/"train.jsonl", "text", "category")[0]
    assert_dedup_promises(rows, res.ledger, 0.8)
    assert res.stats["dropped"]["near_duplicate"] > 1000 and res.stats["near_duplicates"]["keys"] == rows.text.map(normalize_text).nunique()


@pytest.mark.skipif(not BANKING.exists(), reason="needs ../shared/data/banking77 (CI and developer machines have it)")
@pytest.mark.parametrize("noise", ["drop", "majority"])
@pytest.mark.parametrize("block", [8192, 97])
def test_banking77_deduplication_equals_the_brute_force_rules(noise, block, monkeypatch):
    "3,000 real rows: the fast exact search gives what the plain rules give on every cosine, in one round or in 31."
    import functools
    from finetune_nb import pairs
    monkeypatch.setattr(pairs, "leaders", functools.partial(pairs.leaders, block=block))
    rows = read_jsonl(BANKING/"train.jsonl", "text", "category")[0].head(3000)
    for threshold in (0.6, 0.8):
        assert_same_as_brute_force(rows, threshold, noise)
        kept, ledger = drop_duplicates(rows, threshold, noise)
        assert_dedup_promises(rows, pd.DataFrame(ledger, columns=["line", "reason", "duplicate_of", "similarity"]), threshold)


def test_duplicates_edge_cases(tmp_path):
    def run(texts, labels=None, threshold=0.8, noise="drop"):
        df = pd.DataFrame({"id": range(1, len(texts) + 1), "text": texts, "label": labels or ["a"]*len(texts)})
        assert_same_as_brute_force(df, threshold, noise)
        kept, ledger = drop_duplicates(df, threshold, noise)
        return kept.id.tolist(), [(e["line"], e["reason"], e.get("duplicate_of"), e.get("similarity")) for e in ledger]
    # texts with no word left after normalisation: only equal keys are copies, never near ones
    assert run(["!!!", " !!! ", "???", "\u2026"]) == ([1, 3, 4], [(2, "exact_duplicate", 1, None)])
    # one-word texts
    assert run(["card", "CARD", "cards", "pin"]) == ([1, 3, 4], [(2, "exact_duplicate", 1, None)])
    # all identical input
    kept, ledger = run(["my card is lost"]*50)
    assert kept == [1] and {r for _, r, *_ in ledger} == {"exact_duplicate"} and len(ledger) == 49
    # threshold 1.0: only the same words (in any order) are near duplicates, at similarity 1.0
    assert run(["lost my card", "card lost my", "lost my card now", "My  lost card"], threshold=1.0) == \
        ([1, 3], [(2, "near_duplicate", 1, 1.0), (4, "near_duplicate", 1, 1.0)])
    # a chain a ~ b ~ c with a !~ c: c stays
    chain = ["my card has not arrived yet", "my card has not arrived yet please", "my new card has not arrived yet please"]
    kept, ledger = run(chain)
    assert kept == [1, 3] and [x[:3] for x in ledger] == [(2, "near_duplicate", 1)]
    # majority: line 1 loses to the two y rows of its group; regrouped, line 2 leads and reaches line 3 (z) as well
    kept, ledger = run(chain + ["my card has not arrived yet!"], ["x", "y", "z", "y"], noise="majority")
    assert kept == [2] and [x[:3] for x in ledger] == [(1, "minority_label", 2), (3, "minority_label", 2), (4, "near_duplicate", 2)]


def test_reference_file_without_labels_is_compared_by_text(tmp_path):
    train_lines = [j(text=f"please tell me how to {v} my {o} today", label=o) for v in ("open", "close", "freeze", "view")
                   for o in ("card", "account", "loan")]
    ref = write_lines(tmp_path/"official.jsonl", [j(text="Please tell me how to OPEN my card today"), j(text="nothing like it at all"),
                                                 j(text="today please tell me how to view my loan", id=7), j(body="no text"),
                                                 "oops", j(text="")])
    res = clean(CleanSettings(input_path=str(write_lines(tmp_path/"r.jsonl", train_lines)), label_field="label",
                              reference_test=str(ref), near_dup_threshold=0.9, test_size=0.25))
    found = res.stats["leakage"]["reference_test"]
    assert (found["lines"], found["rows"], found["unreadable_lines"]) == (6, 3, 3)
    assert found["unreadable"] == {"missing_text": 1, "bad_json": 1, "empty_text": 1}
    hits = {x["id"]: x for x in found["in_train"]}
    assert 2 not in hits and set(hits) <= {1, 3}
    in_train = set(res.train.text)
    assert (1 in hits) == ("please tell me how to open my card today" in in_train) and (3 in hits) == ("please tell me how to view my loan today" in in_train)
    for x in found["in_train"]: assert x["train_id"] in set(res.train.id) and (x["exact"] or x["similarity"] >= 0.9)
    if 3 in hits: assert not hits[3]["exact"] and hits[3]["similarity"] == 1.0  # the same words in another order


# --- the line-count invariant on generated messy files ------------------------------------------

WORDS = ["card", "pin", "lost", "my", "new", "where", "is", "fee", "the", "charged", "activate", "help"]
valid_row = st.tuples(st.lists(st.sampled_from(WORDS), min_size=1, max_size=7).map(" ".join),
                      st.sampled_from(["a", "b", "c", "007", 3, "NA"]))
messy_only = st.one_of(
    st.sampled_from([b"", b"   ", b"\xff\xfe", b"{", b"[]", b"null", b"42", b'{"t": null, "l": "a"}', b'{"t": "x"}',
                     b'{"l": "a"}', b'{"t": "x", "l": 1.5}', b'{"t": "x", "l": true}', b'{"t": ["x"], "l": "a"}',
                     b'{"t": "  ", "l": "a"}', b'{"t": "x\\u2028y", "l": "a"}'.replace(b"\\u2028", "\u2028".encode())]),
    st.builds(lambda s: s.encode("utf-8", "surrogatepass") if s else b"", st.text(max_size=20)),
)
messy_line = st.integers(0, 9).flatmap(lambda k: valid_row if k < 8 else messy_only)  # 4 rows in 5 are valid
messy_file = st.integers(1, 60).flatmap(lambda n: st.lists(st.tuples(messy_line, st.booleans()), min_size=n, max_size=n))


def encode(line, nested: bool) -> bytes:
    "A generated line as bytes; a valid row as `{t, l}` or, nested, `{m: {t, l}}` (read through the dotted fields `m.t`, `m.l`)."
    if isinstance(line, bytes): return line
    text, label = line
    return json.dumps({"m": {"t": text, "l": label}, "t": 0} if nested else {"t": text, "l": label}).encode()


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(lines=messy_file, nested=st.booleans(),
       final_newline=st.booleans(), noise=st.sampled_from(["drop", "majority"]),
       threshold=st.sampled_from([0.5, 0.8, 1.0]), max_per=st.sampled_from([0, 3]), min_per=st.sampled_from([0, 2]),
       test_size=st.sampled_from([0.2, 0.5]))
def test_every_line_is_accounted_for(tmp_path_factory, lines, nested, final_newline, noise, threshold, max_per, min_per, test_size):
    f = tmp_path_factory.mktemp("messy")/"raw.jsonl"
    f.write_bytes(b"\n".join(encode(l, nested) + (b"\r" if cr else b"") for l, cr in lines) + (b"\n" if final_newline else b""))
    n_lines = len(f.read_bytes().split(b"\n")) - (1 if f.read_bytes().endswith(b"\n") else 0)
    fields_ = ("m.t", "m.l") if nested else ("t", "l")
    s = CleanSettings(input_path=str(f), text_field=fields_[0], label_field=fields_[1], noise=noise, near_dup_threshold=threshold,
                      max_per_label=max_per and max(max_per, min_per), min_per_label=min_per, test_size=test_size)
    try: rows = read_jsonl(f, *fields_)[0]
    except ValueError: rows = None  # no row at all: clean refuses below
    if rows is not None and len(rows):  # deduplication keeps its promises, refused runs included
        assert_same_as_brute_force(rows, threshold, noise)  # the rows and reasons the plain rules give on every cosine
        kept, ledger = drop_duplicates(rows, threshold, noise)
        assert_dedup_promises(rows, pd.DataFrame(ledger, columns=["line", "reason", "duplicate_of", "similarity"]), threshold)
        event("near duplicates" if any(e["reason"] == "near_duplicate" for e in ledger) else "no near duplicates")
    try: res = clean(s)
    except ValueError as e:  # only the documented refusals
        assert any(m in str(e) for m in ("cannot be split", "no rows left", "is in none of", "is a JSON object", "is empty")), e
        event("refused before publishing")
        return
    assert len(res.train) + len(res.test) + len(res.ledger) == n_lines
    ids = [*res.train.id, *res.test.id, *res.ledger.line]
    assert sorted(ids) == list(range(1, n_lines + 1))
    assert set(res.ledger.reason) <= set(REASONS)
    assert res.train.label.map(type).eq(str).all() and res.test.text.map(type).eq(str).all()
    assert_dedup_promises(rows, res.ledger, threshold)
    out = publish_dataset(res, f.parent/"ds")
    assert published_lines(Path(out.location)) == n_lines


def test_a_reference_file_without_texts_stops_the_run_before_any_work(tmp_path, monkeypatch):
    import finetune_nb.clean as C
    monkeypatch.setattr(C, "drop_duplicates", lambda *a, **k: pytest.fail("deduplication started"))
    ref = write_lines(tmp_path/"official.jsonl", [j(body="a text under another field")])
    with pytest.raises(ValueError, match=r"official.jsonl: text_field 'text' is in none of its 1 JSON objects; fields present: body"):
        clean(CleanSettings(reference_test=str(ref)))


def test_the_published_card_and_stats_name_files_not_paths(tmp_path, no_secrets, monkeypatch):
    "What an hf:// target uploads says nothing about the disk it came from; license and language fill the card's YAML."
    monkeypatch.setenv("HF_TOKEN", "hf_" + "D"*34)
    (tmp_path/"deep"/"inside").mkdir(parents=True)
    raw = write_lines(tmp_path/"deep"/"inside"/"tickets.jsonl", [j(text=f"{w} question about my {t}", label=t) for t in ("card", "pin")
                                                                  for w in ("first", "second", "third", "fourth")])
    s = CleanSettings(input_path=str(raw), label_field="label", test_size=0.5, license="cc-by-4.0", language=["en", "de"],
                      reference_test=str(raw))
    monkeypatch.chdir(tmp_path)
    with HubStub({"hf_" + "D"*34: ("ada", "write")}) as hub:
        run_clean(CleanSettings(**{**s.__dict__, "target": "hf://datasets/ada/tickets"}))
        files = hub.files("hf://datasets/ada/tickets")
    published = b"".join(files.values())
    assert str(tmp_path).encode() not in published and b"tickets.jsonl" in published
    card = files["README.md"].decode()
    assert "license: cc-by-4.0" in card and "- en" in card and "- de" in card
    with pytest.raises(ValueError, match="license 'CC BY': a Hub license id"): CleanSettings(license="CC BY")


def test_two_datasets_in_folders_of_one_name_load_as_themselves(tmp_path):
    "`datasets` caches a local folder by its name and card: every run's `dataset/` is named alike, and must not load another's."
    from datasets import load_dataset
    for k in range(2):
        raw = write_lines(tmp_path/f"r{k}.jsonl", [j(text=f"question {w} about {t} number {k}", label=t) for t in ("a", "b") for w in WORDS[:4]])
        res = clean(CleanSettings(input_path=str(raw), label_field="label", near_dup_threshold=1.0, test_size=0.25))
        folder = Path(publish_dataset(res, tmp_path/f"run{k}"/"dataset").location)
        assert sorted(load_dataset(str(folder))["train"]["text"]) == sorted(res.train.text)
