"""A real snakemake run of .test/multilabel (digits tagged even/odd, large, loop, prime):
multilabel folds, per-class sigmoid probabilities, per-class stackers, a space-separated
submission."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from podium.data.digits import digit_tags
from podium.task import TaskSpec

pytestmark = pytest.mark.slow

CLASSES = ["even", "large", "loop", "odd", "prime"]


@pytest.fixture(scope="module")
def multilabel_run(tmp_path_factory):
    """A complete run of .test/multilabel."""
    from conftest import Workflow, dot_test_config

    flow = Workflow(tmp_path_factory.mktemp("multilabel"), dot_test_config("multilabel"))
    flow.snakemake()
    return flow


def test_task_and_labels(multilabel_run):
    results = multilabel_run.results
    spec = TaskSpec.load(results / "data/task.json")
    assert spec.task == "multilabel" and list(spec.classes) == CLASSES
    train = pd.read_csv(results / "competition/train.csv", dtype=str)
    assert train["label"].str.contains(" ").any()  # real label sets, not single classes
    assert digit_tags(7) == "large odd prime" and digit_tags(0) == "even loop"


def test_folds_share_every_label(multilabel_run):
    """Iterative stratification: each fold holds about half of every label's images."""
    results = multilabel_run.results
    spec = TaskSpec.load(results / "data/task.json")
    folds = pd.read_csv(results / "folds.csv", dtype={"id": str})
    labels = pd.read_csv(results / "competition/train.csv", dtype=str).set_index("id")["label"]
    y = spec.encode(labels.loc[folds["id"]])
    per_fold = np.stack([y[folds["fold"].to_numpy() == k].sum(axis=0) for k in (0, 1)])
    assert (per_fold > 0).all()
    assert (np.abs(per_fold[0] - per_fold[1]) <= 0.1 * y.sum(axis=0) + 1).all()


def test_predictions_are_independent_probabilities(multilabel_run):
    results = multilabel_run.results
    columns = [f"p_{c}" for c in CLASSES]
    for kind, name in (("models", "resnet10t"), ("ensemble", "mean"), ("ensemble", "geomean"),
                       ("ensemble", "hill_climb"), ("ensemble", "lightgbm"),
                       ("ensemble", "logistic")):
        oof = pd.read_parquet(results / f"{kind}/{name}/oof.parquet")
        test = pd.read_parquet(results / f"{kind}/{name}/test.parquet")
        assert list(oof.columns) == ["id", *columns] and list(test.columns) == ["id", *columns]
        values = np.concatenate([oof[columns].to_numpy(), test[columns].to_numpy()])
        assert ((values >= 0) & (values <= 1)).all()
        cv = json.loads((results / f"{kind}/{name}/cv.json").read_text())
        assert cv["metric"] == "f1_macro" and len(cv["fold_scores"]) == 2
        if name == "lightgbm":
            assert cv["details"]["meta_features"] == ["height", "width", "aspect", "channels"]


def test_submission_holds_label_sets(multilabel_run):
    results = multilabel_run.results
    sample = pd.read_csv(results / "competition/sample_submission.csv", dtype=str)
    submission = pd.read_csv(results / "submission.csv", dtype=str, keep_default_na=False)
    assert list(submission.columns) == list(sample.columns)
    assert list(submission["id"]) == list(sample["id"])
    for cell in submission["label"]:
        labels = cell.split(" ")
        assert labels and set(labels) <= set(CLASSES)
        assert labels == sorted(labels, key=CLASSES.index)  # class order, no repeats
    board = pd.read_csv(results / "leaderboard.csv")
    assert set(board["name"]) == {"resnet10t", "mean", "geomean", "hill_climb", "lightgbm",
                                  "logistic", "mean+f1", "lightgbm+f1"}
    score = json.loads((results / "score.json").read_text())
    assert 0.0 <= score["score"] <= 1.0


def test_multilabel_demo_needs_the_multilabel_task(workflow):
    workflow.config["competition"]["embedded"] = "digits_multilabel"
    workflow.write_config()
    proc = workflow.snakemake("-n", check=False)
    assert proc.returncode != 0
    assert "multilabel" in proc.output and "task" in proc.output


def test_thresholds_are_fitted_on_oof_and_applied_to_test(multilabel_run):
    """The post-processed entry holds 0/1 decisions, its fitted per-class thresholds sit in
    cv.json, and its CV (thresholds fitted without each held-out fold) is on the board."""
    results = multilabel_run.results
    columns = [f"p_{c}" for c in CLASSES]
    entry = results / "postprocess/mean+f1"
    cv = json.loads((entry / "cv.json").read_text())
    assert cv["kind"] == "postprocess" and cv["details"]["entry"] == "mean"
    thresholds = cv["details"]["fitted"]["thresholds"]
    assert len(thresholds) == len(CLASSES) and all(0 < t < 1 for t in thresholds)
    test = pd.read_parquet(entry / "test.parquet")
    decisions = test[columns].to_numpy()
    assert set(np.unique(decisions)) <= {0.0, 1.0} and (decisions.sum(axis=1) >= 1).all()
    mean_test = pd.read_parquet(results / "ensemble/mean/test.parquet")[columns].to_numpy()
    np.testing.assert_array_equal(
        (mean_test >= np.array(thresholds)) | (decisions == 1), decisions == 1)
