"""Real snakemake runs of the value tasks on the digits, .test/regression (rmse) and
.test/ordinal (qwk grades), each predicted as one `pred` column and submitted as a number or a
grade."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from podium.task import TaskSpec

pytestmark = pytest.mark.slow


def _run(tmp_path_factory, task: str):
    """A complete run of .test/<task>."""
    from conftest import Workflow, dot_test_config

    flow = Workflow(tmp_path_factory.mktemp(task), dot_test_config(task))
    flow.snakemake()
    return flow


@pytest.fixture(scope="module")
def regression_run(tmp_path_factory):
    return _run(tmp_path_factory, "regression")


@pytest.fixture(scope="module")
def ordinal_run(tmp_path_factory):
    return _run(tmp_path_factory, "ordinal")


def _check_predictions(results, metric: str) -> None:
    folds = pd.read_csv(results / "folds.csv", dtype={"id": str})
    for kind, name in (("models", "resnet10t"), ("ensemble", "mean"), ("ensemble", "geomean"),
                       ("ensemble", "hill_climb"), ("ensemble", "lightgbm"),
                       ("ensemble", "linear")):
        oof = pd.read_parquet(results / f"{kind}/{name}/oof.parquet")
        test = pd.read_parquet(results / f"{kind}/{name}/test.parquet")
        assert list(oof.columns) == ["id", "pred"] and list(test.columns) == ["id", "pred"]
        assert sorted(oof["id"]) == sorted(folds["id"])
        assert np.isfinite(oof["pred"]).all() and np.isfinite(test["pred"]).all()
        cv = json.loads((results / f"{kind}/{name}/cv.json").read_text())
        assert cv["metric"] == metric
    board = pd.read_csv(results / "leaderboard.csv")
    assert set(board["metric"]) == {metric}


def test_regression_predicts_values(regression_run):
    results = regression_run.results
    spec = TaskSpec.load(results / "data/task.json")
    assert spec.task == "regression" and spec.prediction_columns == ["pred"]
    _check_predictions(results, "rmse")
    board = pd.read_csv(results / "leaderboard.csv")
    assert board["cv_mean"].is_monotonic_increasing  # rmse: lower is better, best first
    folds = pd.read_csv(results / "folds.csv")
    assert set(folds["fold"]) == {0, 1}
    submission = pd.read_csv(results / "submission.csv")
    assert submission["label"].dtype.kind == "f"
    score = json.loads((results / "score.json").read_text())
    assert score["metric"] == "rmse" and score["score"] >= 0
    log = (results / "logs/train_model/resnet10t_fold0.log").read_text()
    assert "sampling train rows by adversarial weights" in log


def test_ordinal_submits_grades(ordinal_run):
    results = ordinal_run.results
    spec = TaskSpec.load(results / "data/task.json")
    assert spec.task == "ordinal" and spec.classes == tuple(str(d) for d in range(10))
    _check_predictions(results, "qwk")
    submission = pd.read_csv(results / "submission.csv", dtype=str)
    assert set(submission["label"]) <= set(spec.classes)
    cuts = results / "postprocess/mean+cuts"
    cv = json.loads((cuts / "cv.json").read_text())
    points = cv["details"]["fitted"]["cut_points"]
    assert len(points) == 9 and points == sorted(points)
    graded = pd.read_parquet(cuts / "test.parquet")["pred"]
    assert set(graded) <= set(range(10))
    score = json.loads((results / "score.json").read_text())
    assert score["metric"] == "qwk" and -1 <= score["score"] <= 1


def test_a_metric_that_cannot_score_the_task_is_refused(workflow):
    workflow.config["competition"].update(task="regression", metric="accuracy")
    workflow.write_config()
    proc = workflow.snakemake(check=False)
    assert proc.returncode != 0
    assert "competition.metric" in proc.output and "rmse" in proc.output
