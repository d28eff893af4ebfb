"""A real snakemake run of a binary competition folder (the digits relabelled even/odd, AUC):
two probability columns, F1 thresholds on the positive class, labels in the submission."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from podium.data.digits import write_digits_competition
from podium.task import TaskSpec

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def binary_run(tmp_path_factory):
    from conftest import TINY_CONFIG, Workflow, _merge

    root = tmp_path_factory.mktemp("binary")
    competition = root / "competition"
    write_digits_competition(competition, max_images=120)
    for table in ("train.csv", "sample_submission.csv", "solution.csv"):
        frame = pd.read_csv(competition / table, dtype=str)
        frame["label"] = np.where(frame["label"].astype(int) % 2 == 0, "even", "odd")
        frame.to_csv(competition / table, index=False)
    (root / "flow").mkdir()
    flow = Workflow(root / "flow")
    flow.config = _merge(flow.config, TINY_CONFIG)
    flow.config["competition"].update(embedded=None, dir=str(competition), task="binary",
                                      metric="auc")
    flow.config["models"] = {"resnet10t": TINY_CONFIG["models"]["resnet10t"]}
    flow.config["postprocess"] = {"f1": {"method": "thresholds_f1", "entries": ["mean"]}}
    flow.write_config()
    flow.snakemake()
    return flow, competition


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
    submission = pd.read_csv(results / "submission.csv", dtype=str)
    assert list(submission["id"]) == list(sample["id"])
    assert set(submission["label"]) <= {"even", "odd"}
