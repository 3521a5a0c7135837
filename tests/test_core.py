"""Integration, fault and property tests for `finetune_nb.core` (unit examples live in nbs/00_core.ipynb)."""
import json, os, signal, subprocess, sys, threading, time, unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from finetune_nb import core
from finetune_nb.core import check_no_secrets, parse_target, publishing, redact, sample_data, setup_logging, get_logger
from finetune_nb.testing import HubStub

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent/"shared"/"data"/"banking77"
WRITE, READ = "hf_" + "W"*34, "hf_" + "R"*34


def versions(folder: Path) -> set[str]:
    "The version stamps of the files in `folder` (`v3_a.txt` -> 'v3')."
    return {p.name.split("_")[0] for p in folder.iterdir()}


def publish_version(dest, n, **kw):
    with publishing(dest, overwrite=True, **kw) as pub:
        for part in "abc": (pub.staging/f"v{n}_{part}.txt").write_text(f"{n}\n")
    return pub

# --- local targets -----------------------------------------------------------------------------

def test_kill_while_writing_keeps_previous_version(tmp_path):
    dest = tmp_path/"data"
    publish_version(dest, 1)
    script = f"""
import sys, time
from finetune_nb.core import publishing
with publishing({str(dest)!r}, overwrite=True) as pub:
    (pub.staging/"v2_a.txt").write_text("half")
    print("writing", flush=True)
    time.sleep(60)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL); proc.wait(10)
    assert versions(dest) == {"v1"} and len(list(dest.iterdir())) == 3
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "data"]
    assert all(n.startswith(".data.staging-") for n in leftovers)  # hidden, never at the target


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_replace_swaps_whole_versions(tmp_path, monkeypatch, exchange):
    if not exchange: monkeypatch.setattr(core, "_exchange", lambda a, b: False)
    dest = tmp_path/"model"
    for n in range(1, 4):
        publish_version(dest, n)
        assert versions(dest) == {f"v{n}"} and len(list(dest.iterdir())) == 3
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no staging or .old folders left


def test_readers_never_see_a_mix(tmp_path):
    """While versions are swapped in, no listing of the target mixes two versions, and the target never
    goes missing. (A reader that opened the old version just before a swap may see it shrink as it is
    deleted: that is the old version going away, not a mix.)"""
    if not core._exchange(tmp_path, tmp_path): pytest.skip("no renameat2(RENAME_EXCHANGE) here")
    dest = tmp_path/"data"
    publish_version(dest, 0)
    seen, bad, stop, reading = set(), [], threading.Event(), threading.Event()

    def read():
        while not stop.is_set():
            names = os.listdir(dest)
            v = {n.split("_")[0] for n in names}
            seen.update(v)
            if len(v) > 1: bad.append(names)
            reading.set()

    reader = threading.Thread(target=read); reader.start()
    try:
        assert reading.wait(10)  # the reader is reading before the first swap
        for n in range(1, 400):  # until the reader has seen a second version (or 400 swaps)
            publish_version(dest, n)
            if n >= 40 and len(seen) > 1: break
    finally:
        stop.set(); reader.join()
    assert not bad, bad[:3]
    assert len(seen) > 1  # it read while versions were swapped in: the check above was not vacuous


def test_refusals_happen_before_any_work(tmp_path):
    (tmp_path/"taken").mkdir(); (tmp_path/"taken"/"x").write_text("x")
    (tmp_path/"file").write_text("x")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        with publishing(tmp_path/"taken"): pytest.fail("the body must not run")
    with pytest.raises(NotADirectoryError, match="not a folder"):
        with publishing(tmp_path/"file", overwrite=True): pytest.fail("the body must not run")
    (tmp_path/"empty").mkdir()
    with publishing(tmp_path/"empty") as pub: (pub.staging/"a").write_text("a")  # an empty folder is free
    assert (tmp_path/"empty"/"a").read_text() == "a"


def test_target_taken_while_working_is_refused(tmp_path):
    dest = tmp_path/"data"
    with pytest.raises(FileExistsError):
        with publishing(dest) as pub:
            (pub.staging/"mine").write_text("1")
            dest.mkdir(); (dest/"theirs").write_text("2")  # another process published meanwhile
    assert [p.name for p in dest.iterdir()] == ["theirs"]


def test_published_folder_gets_normal_permissions(tmp_path):
    publish_version(tmp_path/"data", 1)
    mode = (tmp_path/"data").stat().st_mode & 0o777
    assert mode == 0o777 & ~core._umask()

# --- Hub targets, against the loopback stub ----------------------------------------------------

@pytest.fixture
def hub(no_secrets, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_TOKEN", WRITE)
    monkeypatch.chdir(tmp_path)
    with HubStub({WRITE: ("ada", "write"), READ: ("bob", "read")}) as stub: yield stub


def test_hub_publish_uploads_and_keeps_local_copy(hub, tmp_path):
    pub = publish_version("hf://datasets/ada/clean", 1)
    assert sorted(hub.files("hf://datasets/ada/clean")) == ["v1_a.txt", "v1_b.txt", "v1_c.txt"]
    assert pub.commit == hub.head("dataset", "ada/clean") and pub.commit in pub.location
    assert pub.local_dir == tmp_path/"runs/hub/datasets/ada/clean" and versions(pub.local_dir) == {"v1"}  # cwd tmp_path: ./runs
    assert not hub.repos[("dataset", "ada/clean")]["private"]


def test_hub_refuses_non_empty_repo_unless_overwrite(hub):
    publish_version("hf://ada/clf", 1)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        with publishing("hf://ada/clf"): pytest.fail("the body must not run")
    publish_version("hf://ada/clf", 2)  # overwrite: stale files are deleted in the same commit
    assert sorted(hub.files("hf://ada/clf")) == ["v2_a.txt", "v2_b.txt", "v2_c.txt"]
    assert len(hub.repos[("model", "ada/clf")]["commits"]) == 2


def test_hub_local_copy_respects_overwrite(hub, tmp_path):
    mine = tmp_path/"mine"; mine.mkdir(); (mine/"thesis.txt").write_text("years of work")
    with pytest.raises(FileExistsError):
        with publishing("hf://ada/clf", local_dir=mine): pytest.fail("the body must not run")
    assert (mine/"thesis.txt").exists() and ("model", "ada/clf") not in hub.repos


def test_hub_private_repo_and_branch(hub):
    with publishing("hf://ada/clf@exp1", private=True) as pub: (pub.staging/"a.txt").write_text("a")
    repo = hub.repos[("model", "ada/clf")]
    assert repo["private"] and "exp1" in repo["branches"]
    assert ("POST", "/api/models/ada/clf/commit/exp1") in hub.requests


def test_hub_upload_retries_transient_5xx(hub):
    hub.fail_uploads = 2
    publish_version("hf://datasets/ada/clean", 1)
    assert hub.fail_uploads == 0 and len(hub.files("hf://datasets/ada/clean")) == 3


def test_hub_failed_upload_keeps_the_artefact_and_names_no_token(hub, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_TOKEN", READ)  # may read, may not write
    with pytest.raises(RuntimeError, match=f"kept at {tmp_path/'runs/hub/models/ada/clf'}") as e:
        publish_version("hf://ada/clf", 1)
    assert READ not in str(e.value) and e.value.__cause__ is None and e.value.__suppress_context__
    assert versions(tmp_path/"runs/hub/models/ada/clf") == {"v1"}

# --- secrets -----------------------------------------------------------------------------------

def test_log_file_never_holds_secrets(no_secrets, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_TOKEN", "hf_" + "T"*34)
    monkeypatch.setenv("WANDB_API_KEY", "c0ffee"*7)
    log = tmp_path/"run.log"
    setup_logging("DEBUG", file=log)
    try:
        get_logger("train").info("env: %s", dict(os.environ))
        try: raise ValueError(f"bad key {'c0ffee'*7}")
        except ValueError: get_logger("train").exception("failed")
    finally: setup_logging()
    text = log.read_text()
    assert "hf_" + "T"*34 not in text and "c0ffee"*7 not in text and text.count("***") >= 3


def test_wandb_key_from_netrc(no_secrets):
    (no_secrets/"netrc").write_text("machine api.wandb.ai\n  login user\n  password " + "9"*40 + "\n")
    assert core.wandb_key() == "9"*40
    with pytest.raises(ValueError, match="note"): check_no_secrets({"note": "key " + "9"*40})


def test_hf_token_from_login_cache(no_secrets):
    (no_secrets/"hf_token").write_text("hf_" + "C"*34)
    assert core.hf_token() == "hf_" + "C"*34
    assert redact("x hf_" + "C"*34) == "x ***"


from contextlib import contextmanager


@contextmanager
def environ(**kw):
    "Set (or, with None, unset) environment variables inside the block; restore them after."
    old = {k: os.environ.get(k) for k in kw}
    for k, v in kw.items():
        if v is None: os.environ.pop(k, None)
        else: os.environ[k] = v
    try: yield
    finally:
        for k, v in old.items():
            if v is None: os.environ.pop(k, None)
            else: os.environ[k] = v


@settings(max_examples=200, deadline=None)
@given(st.text(), st.text(), st.text(alphabet="0123456789abcdefABCDEF_-", min_size=8, max_size=60))
def test_redact_removes_the_secrets_in_force_in_any_context(before, after, secret):
    "A W&B key has no tell-tale shape: it is redacted because it is in force (WANDB_API_KEY), wherever it appears."
    with environ(WANDB_API_KEY=secret, HF_TOKEN=None):
        assert secret in core.known_secrets()
        assert secret not in redact(before + secret + after)
    assert redact(before + secret + after) == before + secret + after or "hf_" in before + after  # not in force: left alone


@settings(max_examples=200, deadline=None)
@given(st.text(), st.text(), st.sampled_from(["hf_", "api_org_"]), st.text(alphabet="abcdefXYZ0123456789", min_size=30, max_size=50),
       st.sampled_from([" ", "=", '"', "'", "/", ":", "\n", "(", ","]))
def test_redact_removes_token_shaped_strings_in_force_or_not(before, after, prefix, body, sep):
    "An HF token (or org key) is redacted by its shape, whether or not it is the one in force, between any separators."
    token = prefix + body
    with environ(WANDB_API_KEY=None, HF_TOKEN=None):
        assert token not in redact(before + sep + token + sep + after)


@given(ns=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,15}", fullmatch=True),
       name=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}[A-Za-z0-9]", fullmatch=True),
       kind=st.sampled_from(["model", "dataset"]),
       rev=st.none() | st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_./-]{0,15}", fullmatch=True))
def test_hub_target_round_trips(ns, name, kind, rev):
    if ".." in name: return
    t = core.Target(repo_id=f"{ns}/{name}", repo_type=kind, revision=rev)
    assert parse_target(str(t)) == t

# --- bundled sample ----------------------------------------------------------------------------

def _norm(t): return " ".join(unicodedata.normalize("NFKC", t).casefold().split())


def test_sample_anomalies_are_what_the_manifest_says():
    lines = sample_data().read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) - 1 == 380
    rows = {}
    for i, raw in enumerate(lines[:-1], 1):
        try: rows[i] = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError): rows[i] = None
    manifest = json.loads(sample_data("banking77_sample.anomalies.json").read_text())
    kinds = {a["line"]: a["kind"] for a in manifest}
    for a in manifest:
        row, of = rows[a["line"]], rows.get(a.get("of"))
        match a["kind"]:
            case "exact_duplicate":
                assert _norm(row["text"]) == _norm(of["text"]) and row["category"] == of["category"], a
            case "near_duplicate":
                assert _norm(row["text"]) != _norm(of["text"]) and row["category"] == of["category"], a
                assert len(set(_norm(row["text"]).split()) ^ set(_norm(of["text"]).split())) <= 3, a
            case "conflicting_label":
                assert row["text"] == of["text"] and row["category"] != of["category"], a
            case "bad_json" | "blank_line": assert row is None and lines[a["line"]-1].decode().strip() != "{}", a
            case "not_utf8":
                with pytest.raises(UnicodeDecodeError): lines[a["line"]-1].decode("utf-8")
            case "not_an_object": assert isinstance(row, list), a
            case "missing_label": assert "category" not in row and row["text"], a
            case "empty_text": assert row["text"] == "", a
            case other: pytest.fail(f"unknown kind {other}")
        if "of" in a: assert a["of"] < a["line"] and a["of"] not in kinds, a  # the copy comes after a clean original
    clean = [r for i, r in rows.items() if i not in kinds]
    assert len(clean) == 365 and all(set(r) == {"text", "category"} for r in clean)
    assert len({r["category"] for r in clean}) == 8


@pytest.mark.skipif(not SHARED.exists(), reason="needs ../shared/data/banking77 beside the checkout")
def test_sample_rebuilds_byte_for_byte_from_banking77(tmp_path):
    subprocess.run([sys.executable, str(ROOT/"scripts/make_sample.py"), str(SHARED/"train.jsonl"), str(tmp_path)],
                   check=True, capture_output=True)
    for name in ("banking77_sample.jsonl", "banking77_sample.anomalies.json"):
        assert (tmp_path/name).read_bytes() == sample_data(name).read_bytes(), name
    source = {(r["text"], r["category"]) for r in map(json.loads, (SHARED/"train.jsonl").read_text().splitlines())}
    manifest = {a["line"] for a in json.loads(sample_data("banking77_sample.anomalies.json").read_text())}
    for i, raw in enumerate(sample_data().read_bytes().split(b"\n")[:-1], 1):
        if i not in manifest: assert tuple(json.loads(raw).values()) in source, i
