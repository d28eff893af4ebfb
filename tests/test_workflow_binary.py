"""A real snakemake run of .test/binary, a competition folder of the digits relabelled
even/odd, scored by AUC: two probability columns, F1 thresholds on the positive class, and
since AUC scores probabilities, the positive class's probability in the submission's target
column, scored on the held-out solution by AUC."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from podium.task import TaskSpec

pytestmark = pytest.mark.slow


def test_binary_predictions_and_submission(binary_run):
    flow, competition = binary_run
    results = flow.results
    spec = TaskSpec.load(results / "data/task.json")
    assert spec.task == "binary" and spec.classes == ("even", "odd")
    for kind, name in (("models", "resnet10t"), ("ensemble", "mean"), ("ensemble", "lightgbm"),
                       ("postprocess", "mean+f1")):
        oof = pd.read_parquet(results / f"{kind}/{name}/oof.parquet")
        assert list(oof.columns) == ["id", "p_even", "p_odd"]
        np.testing.assert_allclose(oof[["p_even", "p_odd"]].sum(axis=1), 1.0, atol=1e-6)
    cv = json.loads((results / "postprocess/mean+f1/cv.json").read_text())
    assert cv["details"]["fitted"]["binary"] and len(cv["details"]["fitted"]["thresholds"]) == 1
    board = pd.read_csv(results / "leaderboard.csv")
    assert set(board["metric"]) == {"auc"} and "mean+f1" in set(board["name"])
    sample = pd.read_csv(competition / "sample_submission.csv", dtype=str)
    submission = pd.read_csv(results / "submission.csv", dtype={"id": str})
    assert list(submission.columns) == list(sample.columns)
    assert list(submission["id"]) == list(sample["id"])
    odd = submission["label"]
    assert odd.dtype.kind == "f" and odd.between(0, 1).all()
    best = board["name"].iloc[0]  # the submission is the best entry's p_odd, not its labels
    (test_path,) = results.glob(f"*/{best}/test.parquet")
    test = pd.read_parquet(test_path).set_index("id")
    np.testing.assert_allclose(odd, test.loc[sample["id"], "p_odd"], rtol=1e-6)
    log = (results / "logs/write_submission/all.log").read_text()
    assert "column 'label' gets the probability of the positive class 'odd'" in log


def test_held_out_score_is_the_auc_of_the_probabilities(binary_run):
    from podium.submit.score import score_submission

    flow, competition = binary_run
    spec = TaskSpec.load(flow.results / "data/task.json")
    score = score_submission(flow.results / "submission.csv", competition / "solution.csv",
                             spec)
    solution = pd.read_csv(competition / "solution.csv", dtype={"id": str})
    submission = pd.read_csv(flow.results / "submission.csv", dtype={"id": str})
    merged = solution.merge(submission, on="id", suffixes=("_true", "_pred"))
    expected = roc_auc_score(merged["label_true"] == "odd", merged["label_pred"])
    assert score == {"metric": "auc", "score": pytest.approx(expected), "n": len(solution)}
