"""A real snakemake run of .test/columns (conftest.source_run), a competition whose target
column is named ``source`` and whose group column is named ``fold``, like podium's own columns:
ingest, dedup, folds, training, ensembling and a submission whose ``source`` column holds the
predicted labels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from podium.data.ingest import GROUP_COLUMN, MANIFEST_COLUMNS
from podium.task import TARGET_COLUMN, TaskSpec

pytestmark = pytest.mark.slow


def test_a_target_named_source_reaches_the_submission(source_run):
    flow, competition = source_run
    results = flow.results
    spec = TaskSpec.load(results / "data/task.json")
    assert spec.target == "source" and spec.classes == tuple(str(d) for d in range(10))

    train_csv = pd.read_csv(competition / "train.csv", dtype=str)
    manifest = pd.read_parquet(results / "data/manifest.parquet")
    assert list(manifest.columns) == [*MANIFEST_COLUMNS, GROUP_COLUMN]
    assert set(manifest["source"]) == {"competition"}
    train = manifest[manifest["split"] == "train"]
    assert list(train[TARGET_COLUMN]) == list(train_csv["source"])

    folds = pd.read_csv(results / "folds.csv", dtype={"id": str})
    assert list(folds.columns) == ["id", "fold"] and set(folds["fold"]) == {0, 1}
    writer = train_csv.set_index("id")["fold"]
    assert (folds.groupby(folds["id"].map(writer))["fold"].nunique() == 1).all()

    board = pd.read_csv(results / "leaderboard.csv")
    assert set(board["name"]) == {"resnet10t", "resnet10t_pl", "mean", "geomean", "hill_climb",
                                  "lightgbm"}  # resnet10t_pl: tests/test_workflow_pseudo.py
    sample = pd.read_csv(competition / "sample_submission.csv", dtype=str)
    submission = pd.read_csv(results / "submission.csv", dtype=str)
    assert list(submission.columns) == ["id", "source"] == list(sample.columns)
    assert list(submission["id"]) == list(sample["id"])
    best = board["name"].iloc[0]
    kind = "models" if best.startswith("resnet10t") else "ensemble"
    test = pd.read_parquet(results / f"{kind}/{best}/test.parquet").set_index("id")
    expected = pd.Series(np.asarray(spec.classes)[
        test.loc[sample["id"], spec.prediction_columns].to_numpy().argmax(axis=1)],
        index=sample["id"])
    leaks = pd.read_csv(results / "dedup/leaks.csv", dtype={"test_id": str, "train_label": str})
    trusted = leaks[~leaks["label_conflict"].astype(bool)]
    expected[trusted["test_id"]] = trusted["train_label"].to_numpy()
    assert list(submission["source"]) == list(expected)
