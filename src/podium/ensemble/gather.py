"""Gather a model's folds: OOF for every train row, test averaged over folds, CV score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from podium.ensemble.oof import TrainTruth, aligned_proba, write_predictions
from podium.glue import StageJob
from podium.metrics import require_finite
from podium.task import TaskSpec


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
    oofs = [pd.read_parquet(p) for p in fold_oofs]
    tests = [pd.read_parquet(p) for p in fold_tests]
    for k, (fold_oof, fold_test) in enumerate(zip(oofs, tests, strict=True)):
        require_finite(fold_oof[columns].to_numpy(), f"model {name} fold {k}: OOF")
        require_finite(fold_test[columns].to_numpy(), f"model {name} fold {k}: test")
    oof = pd.concat(oofs, ignore_index=True)
    if oof["id"].duplicated().any():
        raise ValueError(f"{name}: a train id is predicted by more than one fold")
    oof_proba = aligned_proba(oof, truth.ids, columns)
    test_ids = tests[0]["id"]
    test_proba = np.mean([aligned_proba(t, test_ids, columns) for t in tests], axis=0)
    return write_predictions(name, "model", spec, truth, test_ids, oof_proba, test_proba,
                             {"oof": oof_path, "test": test_path, "cv": cv_path})


def gather_job(job: StageJob) -> dict:
    """A classification model's ``gather_model`` job."""
    i, o = job.inputs, job.outputs
    spec = TaskSpec.load(i["task"])
    return gather_model(job.name, spec, TrainTruth.load(i["folds"], i["manifest"], spec),
                        i["fold_oof"], i["fold_test"], o["oof"], o["test"], o["cv"])
