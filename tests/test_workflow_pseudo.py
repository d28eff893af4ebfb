"""Pseudo-labelling as a second round in a real snakemake run (.test/columns,
conftest.source_run): fold k's pseudo labels come from the round-1 fold-k models only, and the
round-2 models join the leaderboard."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from podium.ensemble.pseudo import select_pseudo_labels
from podium.errors import PodiumInputError
from podium.task import TaskSpec

# Tiny one-epoch models are barely better than uniform (0.1 for ten digits), so the workflow
# test (.test/columns) takes every test image; the threshold itself is tested on known values
# below.
THRESHOLD = 0.01


@pytest.mark.slow
def test_round_two_trains_on_confident_test_predictions(source_run):
    workflow, competition = source_run
    assert workflow.config["pseudo_label"] == {"enabled": True, "threshold": THRESHOLD}
    results = workflow.results
    spec = TaskSpec.load(results / "data/task.json")
    sample = pd.read_csv(competition / "sample_submission.csv", dtype=str)
    for fold in (0, 1):
        pseudo = pd.read_csv(results / f"pseudo/fold{fold}.csv", dtype=str)
        assert set(pseudo["id"]) <= set(sample["id"])
        # from this fold's round-1 test predictions alone (never saw this fold's labels)
        round1 = pd.read_parquet(results / f"models/resnet10t/fold{fold}/test.parquet")
        proba = round1[spec.prediction_columns].to_numpy()
        confident = round1.loc[proba.max(axis=1) >= THRESHOLD, "id"]
        assert sorted(pseudo["id"]) == sorted(confident)
        expected = np.asarray(spec.classes)[proba.argmax(axis=1)][proba.max(axis=1) >= THRESHOLD]
        assert sorted(pseudo["label"]) == sorted(expected)
        metrics = json.loads(
            (results / f"models/resnet10t_pl/fold{fold}/metrics.json").read_text())
        assert metrics["n_pseudo"] == len(pseudo) == len(sample)
    oof = pd.read_parquet(results / "models/resnet10t_pl/oof.parquet")
    folds = pd.read_csv(results / "folds.csv", dtype={"id": str})
    assert sorted(oof["id"]) == sorted(folds["id"])  # validated on train rows only
    board = pd.read_csv(results / "leaderboard.csv")
    assert {"resnet10t", "resnet10t_pl"} <= set(board["name"])


def test_select_pseudo_labels_by_task():
    multiclass = TaskSpec("multiclass", "label", ("a", "b", "c"), "accuracy", "id")
    frames = [pd.DataFrame({"id": ["x", "y", "z"], "p_a": [0.9, 0.4, 0.1],
                            "p_b": [0.05, 0.5, 0.1], "p_c": [0.05, 0.1, 0.8]}),
              pd.DataFrame({"id": ["z", "y", "x"], "p_a": [0.1, 0.2, 0.7],
                            "p_b": [0.1, 0.7, 0.2], "p_c": [0.8, 0.1, 0.1]})]
    chosen = select_pseudo_labels(multiclass, frames, 0.75)
    assert chosen.to_dict("list") == {"id": ["x", "z"], "label": ["a", "c"],
                                      "confidence": [0.8, 0.8]}
    multilabel = TaskSpec("multilabel", "label", ("a", "b"), "f1_macro", "id")
    frame = pd.DataFrame({"id": ["x", "y"], "p_a": [0.95, 0.6], "p_b": [0.02, 0.99]})
    chosen = select_pseudo_labels(multilabel, [frame], 0.9)
    assert chosen["id"].tolist() == ["x"] and chosen["label"].tolist() == ["a"]
    regression = TaskSpec("regression", "label", (), "rmse", "id")
    with pytest.raises(PodiumInputError, match="pseudo_label.enabled"):
        select_pseudo_labels(regression, [pd.DataFrame({"id": ["x"], "pred": [1.0]})], 0.9)
