"""The partial-rerun matrix: after one complete run of .test/multiclass (the run
tests/test_workflow.py reads too), each change makes `snakemake -n` plan exactly the jobs that
depend on it, no more and no less."""

from __future__ import annotations

import ast
import contextlib
import copy
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import recorded_params, respelled_yaml, reversed_keys

from podium.settings import canonical

pytestmark = pytest.mark.slow

ENSEMBLE_TAIL = {"blend_models": 3, "stack_models": 3, "postprocess_predictions": 1}
REPORT_TAIL = {"build_leaderboard": 1, "write_submission": 1, "score_submission": 1,
               "plot_results": 1, "all": 1}
TRAINED_TAIL = {"train_model": 4, "predict_test": 4, "gather_model": 2, **ENSEMBLE_TAIL,
                **REPORT_TAIL}


def _sources(root: Path) -> dict[str, bytes]:
    """The content of every file of a workflow copy that a case may edit (code, rules,
    configs), not results or caches."""
    edited = [path for folder in ("src", "workflow", ".test")
              for path in (root / folder).rglob("*")
              if path.is_file() and "__pycache__" not in path.parts]
    files = [root / "Snakefile", root / "config.yaml", *edited]
    return {str(path.relative_to(root)): path.read_bytes() for path in files}


@pytest.fixture
def flow(finished_tiny_run):
    """The shared finished run (conftest), its config and code restored after each case.
    A case's own finally puts back what it edits; this checks that every source file is as
    before (test_nothing_to_do_after_a_complete_run checks that such a copy plans nothing)."""
    finished_tiny_run.write_config()  # as the teardown writes it back
    before = _sources(finished_tiny_run.root)
    yield finished_tiny_run
    finished_tiny_run.config = copy.deepcopy(finished_tiny_run.original)
    finished_tiny_run.write_config()
    after = _sources(finished_tiny_run.root)
    changed = sorted(name for name in before.keys() | after.keys()
                     if before.get(name) != after.get(name))
    assert not changed, f"a case left a change behind in {changed}"


@contextlib.contextmanager
def _edited(path: Path, change: str = "\n_A_CODE_CHANGE = 1\n") -> Iterator[None]:
    """A content change to ``path`` for the block (code unless told otherwise), undone
    afterwards whatever happens."""
    original = path.read_text()
    path.write_text(original + change)
    try:
        yield
    finally:
        path.write_text(original)


def test_nothing_to_do_after_a_complete_run(flow):
    assert flow.planned_jobs() == {}


def test_the_same_content_reordered_and_respelled_reruns_nothing(flow):
    """Params compare by content: in config.yaml and in the .test config layered over it,
    every mapping's keys reversed, fractions in exponent notation (3e-3, a string to PyYAML),
    integral floats as ints and ints as floats where the schema types them."""
    text = respelled_yaml(reversed_keys(flow.config))
    assert yaml.safe_load(text)["models"]["resnet10t"]["lr"] == "3e-3"
    assert text.index("ensemble:") < text.index("competition:")
    shipped = flow.root / "config.yaml"
    original = shipped.read_text()
    try:
        shipped.write_text(respelled_yaml(reversed_keys(yaml.safe_load(original))))
        flow.config_path.write_text(text)
        assert flow.planned_jobs() == {}
    finally:
        shipped.write_text(original)


def test_every_recorded_param_is_in_canonical_form(flow):
    """What Snakemake compares is each param's repr; podium hands every rule its params with
    sorted keys (podium.settings), the ones common.smk builds included."""
    recorded = recorded_params(flow.root)
    assert any("'method'" in text for text in recorded)
    for text in recorded:
        assert repr(canonical(ast.literal_eval(text))) == text


def test_one_models_hyperparameter(flow):
    flow.config["models"]["regnetx_002"]["lr"] = 0.02
    flow.write_config()
    assert flow.planned_jobs() == {"train_model": 2, "predict_test": 2, "gather_model": 1,
                                   **ENSEMBLE_TAIL, **REPORT_TAIL}


def test_a_new_model(flow):
    flow.config["models"]["resnet10t_b"] = {**flow.config["models"]["resnet10t"], "seed": 1}
    flow.write_config()
    assert flow.planned_jobs() == {"train_model": 2, "predict_test": 2, "gather_model": 1,
                                   **ENSEMBLE_TAIL, **REPORT_TAIL}


def test_removing_a_model(flow):
    del flow.config["models"]["regnetx_002"]
    flow.write_config()
    assert flow.planned_jobs() == {**ENSEMBLE_TAIL, **REPORT_TAIL}


def test_a_stacker_parameter(flow):
    flow.config["ensemble"]["stackers"]["xgboost"]["params"]["n_estimators"] = 11
    flow.write_config()
    assert flow.planned_jobs() == {"stack_models": 1, **REPORT_TAIL}


def test_a_post_processing_parameter(flow):
    flow.config["postprocess"]["eq"]["params"] = {"max_iter": 500}
    flow.write_config()
    assert flow.planned_jobs() == {"postprocess_predictions": 1, **REPORT_TAIL}


def test_a_clahe_parameter(flow):
    flow.config["preprocess"]["clahe_clip_limit"] = 3.0
    flow.write_config()
    assert flow.planned_jobs() == {"preprocess_images": 2, "adversarial_validation": 1,
                                   **TRAINED_TAIL}


def test_the_fold_count(flow):
    flow.config["folds"]["n_folds"] = 3
    flow.write_config()
    assert flow.planned_jobs() == {"make_folds": 1, "train_model": 6, "predict_test": 6,
                                   "gather_model": 2, **ENSEMBLE_TAIL, **REPORT_TAIL}


@pytest.mark.parametrize(("module", "expected"), [
    # only the folds script imports podium.data.folds: nothing upstream of the folds reruns
    ("data/folds.py", {"make_folds": 1, **TRAINED_TAIL}),
    # dedup decodes with preprocess.transforms (DICOM), so it and the folds rerun too
    ("preprocess/transforms.py", {"find_train_duplicates": 1, "find_duplicates": 1,
                                  "make_folds": 1, "preprocess_images": 2,
                                  "adversarial_validation": 1, **TRAINED_TAIL}),
    ("train/fit.py", TRAINED_TAIL),
    # gathering never imports the stackers; the leaderboard and plots never the submission
    ("ensemble/stack.py", {**ENSEMBLE_TAIL, **REPORT_TAIL}),
    ("submit/submission.py", {"write_submission": 1, "score_submission": 1, "all": 1}),
])
def test_a_code_change_in_each_stage(flow, module, expected):
    with _edited(flow.root / "src/podium" / module):
        assert flow.planned_jobs() == expected


@pytest.mark.parametrize("module", ["train/fit.py", "train/losses.py", "data/ingest.py",
                                    "ensemble/stack.py", "metrics/__init__.py"])
def test_comment_docstring_and_formatting_edits_rerun_nothing(flow, module):
    """Code hashes are of parsed code: a reworded module docstring, comments and blank lines
    are no code change."""
    path = flow.root / "src/podium" / module
    original = path.read_text()
    edited = "# a comment\n" + original.replace('"""', '"""Reworded. ', 1).replace(
        "\n\n\ndef ", "\n\n\n\ndef ") + "\n# a trailing comment\n"
    assert ast.get_docstring(ast.parse(edited)).startswith("Reworded. ")
    path.write_text(edited)
    try:
        assert flow.planned_jobs() == {}
    finally:
        path.write_text(original)


def test_touching_files_without_changing_them_reruns_nothing(flow):
    touched = [flow.root / "src/podium/train/fit.py", flow.root / "workflow/scripts/gpu_stage.py",
               flow.results / "folds.csv", flow.results / "data/manifest.parquet",
               flow.results / "data/train_manifest.parquet",
               flow.root / "config.yaml", flow.config_path]
    for path in touched:
        os.utime(path)
    assert flow.planned_jobs() == {}


def test_a_workflow_script_change_reruns_its_rule(flow):
    with _edited(flow.root / "workflow/scripts/leaderboard.py"):
        assert flow.planned_jobs() == REPORT_TAIL


def test_new_test_images_rerun_only_test_side_work(binary_run):
    """A competition's second stage (.test/binary's folder, conftest.binary_run): new test
    images and rows. Ingest, preprocessing and prediction of the test side rerun, and what
    reads test predictions; the train side (ingest, dedup, folds, packing, training) does
    not."""
    import pandas as pd

    flow, competition = binary_run
    held, tables = flow.second_stage
    weights = sorted(flow.results.glob("models/*/fold*/model.pt"))
    trained_at = [p.stat().st_mtime_ns for p in weights]
    for image in held.iterdir():
        image.rename(competition / "test" / image.name)
    for name, table in tables.items():
        table.to_csv(competition / name, index=False)

    # one model, a blend, a stacker and a post-processor (mean+f1); no score_submission
    # without an embedded competition's solution
    assert flow.planned_jobs() == {
        "ingest_test": 1, "merge_manifest": 1, "find_duplicates": 1, "preprocess_images": 1,
        "adversarial_validation": 1, "predict_test": 2, "gather_model": 1, "blend_models": 1,
        "stack_models": 1, "postprocess_predictions": 1,
        **{k: v for k, v in REPORT_TAIL.items() if k != "score_submission"}}
    flow.snakemake()
    assert len(weights) == 2 and [p.stat().st_mtime_ns for p in weights] == trained_at
    submission = pd.read_csv(flow.results / "submission.csv", dtype=str)
    assert list(submission["id"]) == list(tables["sample_submission.csv"]["id"])
    assert flow.planned_jobs() == {}
