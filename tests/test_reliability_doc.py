"""nbs/reliability.md states figures; each one is what a test asserts. This file holds the page to the tests' constants, so
a figure cannot be typed by hand and drift from what is checked (or stay on the page after a test stops checking it)."""
import os, re

import pytest

from conftest import NBS, SECRETS_SCANNED

PAGE = (NBS/"reliability.md").read_text(encoding="utf-8")


def row(promise: str) -> str:
    "The table row whose first cell starts with `promise`."
    (line,) = [l for l in PAGE.splitlines() if l.startswith(f"| {promise}")]
    return line


def test_the_fuzz_figures_are_the_fuzz_tests_constants():
    import test_fuzz as F
    if "FUZZ_PER_SHARD" in os.environ: pytest.skip("FUZZ_PER_SHARD changes the number of files: the page states the default")
    r = row("Every input line")
    assert f"{F.SHARDS*F.PER_SHARD:,} files a run ({F.SHARDS} shards of {F.PER_SHARD}" in r
    lo, hi = F.REFUSED
    assert f"refused: between {lo:.0%} and {hi:.0%} of each shard" in r
    assert "two processes with different `PYTHONHASHSEED`" in row("Same input, same seed")
    assert hasattr(F, "test_two_processes_with_other_hash_seeds_publish_the_same_bytes")


def test_the_stopped_run_figures_count_the_fault_tests():
    import test_faults as T
    kills = ["test_a_run_killed_while_training_continues_from_its_checkpoint",
             "test_a_run_killed_while_evaluating_predicts_each_example_once",
             "test_a_run_stopped_by_sigterm_says_interrupted_and_how_to_continue"]
    assert all(hasattr(T, k) for k in kills)
    n = len(kills) + len(T.KILL_AT)  # the publish kill runs once per place in KILL_AT
    assert f"{n} of {n} reach `done`" in row("A stopped run")
    assert "6,000 examples" in row("A stopped run")


def test_the_storage_figures_count_the_storage_tests():
    import test_evaluation, test_failfirst, test_train
    tests = [(test_failfirst, "test_a_full_disk_while_publishing_keeps_the_previous_dataset_and_says_where"),
             (test_evaluation, "test_a_full_disk_while_writing_records_says_where_and_a_rerun_finishes"),
             (test_train, "test_a_full_disk_while_saving_a_checkpoint_says_where_and_resume_goes_on"),
             (test_failfirst, "test_a_folder_that_turns_read_only_during_the_work_is_said_with_its_path_and_resume_finishes")]
    assert all(hasattr(m, name) for m, name in tests)
    assert f"{len(tests)} of {len(tests)}:" in row("A full disk")


def test_the_token_figures_are_the_scans_minimums():
    r = row("Tokens never reach")
    assert (f"at least {SECRETS_SCANNED['finished run']} files for a finished run, {SECRETS_SCANNED['failing run']} for a failing one"
            in r)
    assert re.search(r"\| 0 token values in any file", r)


def test_the_hub_figures_are_the_hub_tests():
    import test_hub
    r = row("The Hub round trip")
    assert "2 upload 503s and 2 download 503s and 2 download timeouts retried" in r
    assert hasattr(test_hub, "through_lfs") and "LFS batch endpoint" in r


def test_the_label_set_figures_are_the_label_set_tests():
    import test_multilabel as M
    kinds = next(m for m in M.test_a_label_list_holding_what_is_no_label_is_refused_naming_file_line_and_field.pytestmark
                 if m.name == "parametrize").args[1]
    assert f"{len(kinds)} of {len(kinds)} kinds of bad list item refused" in row("Label sets (multi-label)")
    assert M.MIN_BOTH == 5 and "every label of 5+ rows in both splits" in row("Label sets (multi-label)")


def test_the_several_fields_figures_are_the_fields_tests_constants():
    import test_fields as F
    r = row("Several text fields")
    assert f"{F.BAD_INPUTS} of {F.BAD_INPUTS} kinds of bad setting or file refused" in r
    assert hasattr(F, "test_the_model_reads_examples_from_its_fields_or_from_as_many_named")


def test_the_long_text_figures_are_the_long_text_tests_constants():
    import test_long as L
    r = row("Long texts")
    assert f"{L.BAD_INPUTS} of {L.BAD_INPUTS} kinds of bad long-text setting refused" in r
    for t in ("test_chunks_are_the_tokenizers_own_overflowing_windows", "test_training_and_prediction_feed_the_model_the_same_chunks",
              "test_pooled_scores_are_each_chunks_own_scores_averaged_or_maxed", "test_short_texts_train_and_predict_the_same_whatever_the_handling"):
        assert hasattr(L, t), t


def test_the_scale_row_names_tests_that_exist():
    import test_evaluation as E, test_failfirst as F, test_orchestrate as O
    row("Prediction at scale")
    for mod, t in ((E, "test_a_file_read_in_parts_gives_the_figures_of_the_whole"), (O, "test_processes_2_share_the_prediction_of_an_examples_file"),
                   (F, "test_a_gzipped_file_is_read_as_it_is_and_one_cut_short_is_refused_naming_the_line"),
                   (E, "test_onnx_runtime_predicts_what_torch_does_and_its_records_never_mix_with_torchs")):
        assert hasattr(mod, t), t
