"""The classify plug-in's entries: reading, aligning and scoring out-of-fold predictions, and
gathering a model's folds into its entry (OOF for every train row, test averaged over folds,
CV score).

Every model, blend and stacker is scored the same way: the metric on each fold's OOF rows,
then mean and standard deviation over folds (:func:`podium.ensemble.entry.fold_summary`).
That is what the leaderboard ranks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from podium.ensemble.entry import fold_summary, write_entry_files
from podium.glue import StageJob
from podium.metrics import LabelSpace, get_metric, require_finite
from podium.task import TARGET_COLUMN, TaskSpec


@dataclass(frozen=True)
class TrainTruth:
    """Train ids in fold order with their encoded labels and folds."""

    ids: pd.Series
    y: np.ndarray
    fold: np.ndarray

    @classmethod
    def load(cls, folds_csv: str | Path, manifest_path: str | Path, spec: TaskSpec) -> TrainTruth:
        folds = pd.read_csv(folds_csv, dtype={"id": str})
        folds = folds[folds["fold"] >= 0].reset_index(drop=True)  # -1: train-only, no OOF
        manifest = pd.read_parquet(manifest_path, columns=["id", TARGET_COLUMN])
        labels = folds["id"].map(dict(zip(manifest["id"], manifest[TARGET_COLUMN], strict=True)))
        return cls(folds["id"], spec.encode(labels), folds["fold"].to_numpy())

    @property
    def n_folds(self) -> int:
        return int(self.fold.max()) + 1


def aligned_proba(frame: pd.DataFrame, ids: pd.Series, columns: list[str]) -> np.ndarray:
    """Rows of ``frame`` in the order of ``ids``; a missing id is a broken artifact."""
    indexed = frame.set_index("id")
    missing = ids[~ids.isin(indexed.index)]
    if len(missing):
        raise ValueError(f"predictions lack {len(missing)} ids, e.g. {missing.iloc[0]!r}")
    return indexed.loc[ids, columns].to_numpy(dtype=np.float64)


def fold_scores(truth: TrainTruth, proba: np.ndarray, metric_name: str,
                space: LabelSpace | None = None) -> list[float]:
    """The metric on each fold's rows, over the competition's label space (NaN where the
    metric is undefined on a fold, e.g. AUC of a fold holding one class)."""
    metric = get_metric(metric_name)
    return [metric(truth.y[truth.fold == k], proba[truth.fold == k], space)
            for k in range(truth.n_folds)]


def cv_summary(name: str, kind: str, truth: TrainTruth, proba: np.ndarray, metric_name: str,
               space: LabelSpace | None = None) -> dict:
    """``cv.json`` content (:func:`podium.ensemble.entry.fold_summary`) of predictions."""
    return fold_summary(name, kind, metric_name, fold_scores(truth, proba, metric_name, space),
                        get_metric(metric_name)(truth.y, proba, space))


def prediction_frame(ids: pd.Series, proba: np.ndarray, columns: list[str]) -> pd.DataFrame:
    """``id`` plus one column per prediction target (DESIGN.md's prediction contract)."""
    frame = pd.DataFrame(proba, columns=columns)
    frame.insert(0, "id", ids.to_numpy())
    return frame


def write_predictions(name: str, kind: str, spec: TaskSpec, truth: TrainTruth,
                      test_ids: pd.Series, oof: np.ndarray, test: np.ndarray,
                      out: dict[str, str | Path], details: dict | None = None) -> dict:
    """Write ``oof.parquet``, ``test.parquet`` and ``cv.json`` of a model, blend, stacker or
    post-processed entry; ``details`` (fitted weights, thresholds) go into cv.json too."""
    columns = spec.prediction_columns
    require_finite(oof, f"{kind} {name}: OOF")
    require_finite(test, f"{kind} {name}: test")
    summary = cv_summary(name, kind, truth, oof, spec.metric, spec.label_space)
    return write_entry_files(summary, prediction_frame(truth.ids, oof, columns),
                             prediction_frame(test_ids, test, columns), out, details)


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
