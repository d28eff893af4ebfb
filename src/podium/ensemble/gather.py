"""Gather a model's folds: OOF for every train row, test averaged over folds, CV score."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from podium.ensemble.oof import TrainTruth, aligned_proba, cv_summary, prediction_frame
from podium.tables import write_json, write_parquet
from podium.task import TaskSpec

log = logging.getLogger(__name__)


def gather_model(
    name: str,
    spec: TaskSpec,
    truth: TrainTruth,
    fold_oofs: list[str | Path],
    fold_tests: list[str | Path],
    oof_path: str | Path,
    test_path: str | Path,
    cv_path: str | Path,
) -> dict:
    """Stack fold OOFs into train order, average fold test predictions, write cv.json."""
    columns = spec.prediction_columns
    oof = pd.concat([pd.read_parquet(p) for p in fold_oofs], ignore_index=True)
    if oof["id"].duplicated().any():
        raise ValueError(f"{name}: a train id is predicted by more than one fold")
    oof_proba = aligned_proba(oof, truth.ids, columns)
    tests = [pd.read_parquet(p) for p in fold_tests]
    test_ids = tests[0]["id"]
    test_proba = np.mean([aligned_proba(t, test_ids, columns) for t in tests], axis=0)
    summary = cv_summary(name, "model", truth, oof_proba, spec.metric)
    write_parquet(prediction_frame(truth.ids, oof_proba, columns), oof_path)
    write_parquet(prediction_frame(test_ids, test_proba, columns), test_path)
    write_json(summary, cv_path)
    log.info("%s: CV %s %.4f ± %.4f", name, spec.metric, summary["cv_mean"], summary["cv_std"])
    return summary
