"""The Hub, round trip, against the loopback stub (`finetune_nb.testing.HubStub`): the whole pipeline with `hf://` targets —
cleaning uploads, training downloads that dataset and uploads the model, evaluation downloads the model and adds its test
metrics to the Hub card — and the faults a real Hub has: 5xx and timeouts, a token that loses its rights, a repo that
appears between the preflight and the publish."""
import json
from pathlib import Path

import pytest

from conftest import run, write_topic_rows
from finetune_nb.data import load_clean_dataset
from finetune_nb.testing import HubStub

WRITE, READ = "hf_" + "W"*34, "hf_" + "R"*34
pytestmark = pytest.mark.slow


@pytest.fixture
def hub(monkeypatch, tmp_path, no_secrets):
    "A fresh stub, this test's own caches (what is read comes from the stub, not from an earlier test), cwd in tmp_path."
    import huggingface_hub.constants as C
    monkeypatch.setenv("HF_TOKEN", WRITE)
    monkeypatch.setattr(C, "HF_HUB_CACHE", str(tmp_path/"hub-cache"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path/"datasets-cache"))
    import datasets.config as D
    monkeypatch.setattr(D, "HF_DATASETS_CACHE", tmp_path/"datasets-cache")
    monkeypatch.chdir(tmp_path)
    with HubStub({WRITE: ("ada", "write"), READ: ("ada", "read")}) as stub: yield stub


def quick(base, tmp_path) -> list[str]:
    return [str(write_topic_rows(tmp_path/"tickets.jsonl")), "--label-field", "label", "--base-model", str(base), "--epochs", "1",
            "--train-batch-size", "4", "--threads", "1", "--wandb-mode", "disabled", "--near-dup-threshold", "1.0",
            "--runs-dir", str(tmp_path/"runs")]


def downloads(hub, repo: str) -> set[str]:
    "The files of `repo` (`datasets/ada/x` or `ada/x`) that were downloaded whole (GET): small ones from the Hub, large ones from storage."
    kind, repo_id = ("dataset", repo[len("datasets/"):]) if repo.startswith("datasets/") else ("model", repo)
    path_of = {oid: p for p, oid in hub.repos[(kind, repo_id)]["lfs"].items()}
    small = {p.split("/resolve/", 1)[1].split("/", 1)[1] for m, p in hub.requests if m == "GET" and p.startswith(f"/{repo}/resolve/")}
    return small | {path_of[p.split("/")[-1]] for m, p in hub.requests if m == "GET" and p.startswith("/lfs-objects/")
                    and p.split("/")[-1] in path_of}


def through_lfs(hub, repo: str) -> set[str]:
    "The files of `repo` that were uploaded as the Hub uploads large files: an LFS object PUT to storage, committed as a pointer."
    kind, repo_id = ("dataset", repo[len("datasets/"):]) if repo.startswith("datasets/") else ("model", repo)
    put = {p.split("/")[-1] for m, p in hub.requests if m == "PUT" and p.startswith("/lfs-upload/")}
    return {p for p, oid in hub.repos[(kind, repo_id)]["lfs"].items() if oid in put}


def test_the_whole_pipeline_round_trips_through_the_hub(base, hub, tmp_path, capsys):
    code, out, err = run(capsys, [*quick(base, tmp_path), "--dataset-target", "hf://datasets/ada/tickets-clean",
                                  "--model-target", "hf://ada/tickets-clf", "--private"])
    assert code == 0, err
    data, model = hub.files("hf://datasets/ada/tickets-clean"), hub.files("hf://ada/tickets-clf")
    assert any(f.startswith("data/train-") for f in data) and "model.safetensors" in model
    parquet = {f for f in data if f.endswith(".parquet")}
    assert parquet <= through_lfs(hub, "datasets/ada/tickets-clean") and "model.safetensors" in through_lfs(hub, "ada/tickets-clf")
    assert not {f for f in data if f.endswith((".csv", ".md", ".json", ".jsonl"))} & through_lfs(hub, "datasets/ada/tickets-clean")
    assert {f for f in data if f.endswith(".parquet")} <= downloads(hub, "datasets/ada/tickets-clean")  # training read the Hub's
    assert "model.safetensors" in downloads(hub, "ada/tickets-clf")  # evaluation read the model back from the Hub
    card = model["README.md"].decode()
    assert "## Test metrics" in card and "<!-- finetune_nb:test-metrics -->" in card  # one commit after the upload
    assert "model-index:" in card and "name: ada/tickets-clean" in card and 'model="ada/tickets-clf"' in card
    assert len(hub.repos[("model", "ada/tickets-clf")]["commits"]) == 2 and hub.repos[("model", "ada/tickets-clf")]["private"]
    (run_dir,) = [p for p in (tmp_path/"runs").iterdir() if p.name != "hub"]  # hub/: the local copies of the Hub targets
    record = json.loads((run_dir/"run.json").read_text())
    assert record["artefacts"]["model"]["target"] == "hf://ada/tickets-clf" and record["results"]["test"]["fine_tuned"]
    info = json.loads(model["train_metrics.json"])
    assert info["dataset"] == "hf://datasets/ada/tickets-clean" and str(tmp_path) not in model["train_metrics.json"].decode()
    used = json.loads(model["training_rows.json"])  # the baseline's rows: read from the Hub, fitted on the Hub dataset's rows
    assert used["dataset"] == "hf://datasets/ada/tickets-clean" and "training_rows.json" in downloads(hub, "ada/tickets-clf")
    assert record["results"]["test"]["baseline"]["macro_f1"] >= 0 and "skipped" not in record["results"]["test"]["baseline"]
    assert WRITE not in out + err and not [f for f in tmp_path.rglob("*") if f.is_file() and WRITE.encode() in f.read_bytes()]


@pytest.mark.parametrize("fault", [503, "timeout"])
def test_downloads_are_retried_through_5xx_and_timeouts(base, hub, tmp_path, fault, monkeypatch):
    import huggingface_hub.constants as C
    from finetune_nb.clean import CleanSettings, clean, publish_dataset
    for name in ("HF_HUB_DOWNLOAD_TIMEOUT", "HF_HUB_ETAG_TIMEOUT"):  # here the client gives up after 1 s; the stub's timeouts last 3
        monkeypatch.setenv(name, "1")                              # (elsewhere the default 10 s: a busy machine is no fault)
        monkeypatch.setattr(C, name, 1)
    raw = write_topic_rows(tmp_path/"t.jsonl")
    publish_dataset(clean(CleanSettings(input_path=str(raw), label_field="label", near_dup_threshold=1.0)), "hf://datasets/ada/d")
    hub.fail_downloads, hub.fail_status = 2, fault
    ds = load_clean_dataset("hf://datasets/ada/d")
    assert hub.fail_downloads == 0 and len(ds["train"]) + len(ds["test"]) == 36  # both faults met, and read through


def test_uploads_are_retried_and_after_the_last_failure_the_local_copy_is_kept_with_the_command(base, hub, tmp_path, capsys):
    hub.fail_uploads, hub.fail_status = 2, 503
    argv = [*quick(base, tmp_path), "--stop-after", "clean", "--dataset-target", "hf://datasets/ada/d"]
    assert run(capsys, argv)[0] == 0 and hub.fail_uploads == 0  # two 503s, retried, published
    hub.fail_uploads = 100  # the Hub stays down
    code, _, err = run(capsys, [*argv, "--dataset-target", "hf://datasets/ada/e", "--name", "down"])
    assert code == 1 and "upload to hf://datasets/ada/e failed" in err
    local = tmp_path/"runs"/"hub"/"datasets"/"ada"/"e"
    assert f"hf upload ada/e {local} --repo-type dataset" in err and (local/"README.md").is_file()  # cwd tmp_path: ./runs


def test_a_token_that_loses_its_rights_mid_run_keeps_the_local_copy(base, hub, tmp_path, capsys, monkeypatch):
    import finetune_nb.orchestrate as O
    real = O.run_clean
    def revoked(*a, **k):
        hub.tokens[WRITE] = ("ada", "read")  # write access withdrawn after the preflight
        return real(*a, **k)
    monkeypatch.setattr(O, "run_clean", revoked)
    code, _, err = run(capsys, [*quick(base, tmp_path), "--stop-after", "clean", "--dataset-target", "hf://datasets/ada/d"])
    assert code == 1 and "upload to hf://datasets/ada/d failed" in err and f"kept at {tmp_path/'runs/hub/datasets/ada/d'}" in err
    assert WRITE not in err


def test_a_repo_that_appears_between_preflight_and_publish_is_not_overwritten(base, hub, tmp_path, capsys, monkeypatch):
    import finetune_nb.orchestrate as O
    real = O.run_clean
    def someone_else(*a, **k):
        hub.add_repo("dataset", "ada/d", {"theirs.csv": b"x"})
        return real(*a, **k)
    monkeypatch.setattr(O, "run_clean", someone_else)
    code, _, err = run(capsys, [*quick(base, tmp_path), "--stop-after", "clean", "--dataset-target", "hf://datasets/ada/d"])
    assert code == 1 and "hf://datasets/ada/d already holds 1 files" in err
    assert hub.files("hf://datasets/ada/d") == {"theirs.csv": b"x"}
