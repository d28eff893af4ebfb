"""A leaderboard entry's files, the same for every task: ``oof.parquet`` (the OOF rows' ids,
with the task's predictions where they fit a table), ``test.parquet`` (the test ids, likewise)
and ``cv.json`` (the metric per fold, their mean and std, the pooled OOF score). A task
writes its own payload beside them (a segmentation entry's probability maps); the
leaderboard, the submission and the plots find an entry by these files alone.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from podium.tables import write_json, write_parquet

log = logging.getLogger(__name__)


def fold_summary(name: str, kind: str, metric: str, fold_scores: Sequence[float],
                 oof_score: float) -> dict:
    """``cv.json``'s content: per-fold scores, their mean and std over the folds where the
    metric is defined (``undefined_folds`` lists the others, e.g. AUC of a fold holding one
    class), and the pooled OOF score."""
    scores = [float(s) for s in fold_scores]
    defined = [s for s in scores if np.isfinite(s)]
    summary = {
        "name": name, "kind": kind, "metric": metric,
        "cv_mean": float(np.mean(defined)) if defined else float("nan"),
        "cv_std": float(np.std(defined)) if defined else float("nan"),
        "fold_scores": scores,
        "oof_score": oof_score,
    }
    undefined = [k for k, s in enumerate(scores) if not np.isfinite(s)]
    if undefined:
        summary["undefined_folds"] = undefined
        log.warning("%s %s: %s is undefined on folds %s (e.g. a fold holding one class); CV "
                    "averages the other folds", kind, name, metric, undefined)
    return summary


def write_entry_files(summary: dict, oof: pd.DataFrame, test: pd.DataFrame,
                      out: Mapping[str, str | Path], details: dict | None = None) -> dict:
    """Write an entry's ``oof``, ``test`` and ``cv`` files (``out`` names them);
    ``details`` (fitted weights, thresholds, post-processing) go into cv.json."""
    if details:
        summary["details"] = details
    write_parquet(oof, out["oof"])
    write_parquet(test, out["test"])
    write_json(summary, out["cv"])
    log.info("%s %s: CV %s %.4f ± %.4f", summary["kind"], summary["name"], summary["metric"],
             summary["cv_mean"], summary["cv_std"])
    return summary
