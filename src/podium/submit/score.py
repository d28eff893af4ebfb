"""Score a submission against a held-out solution (the embedded default keeps one)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from podium.metrics import get_metric
from podium.submit.submission import plan_submission
from podium.tables import write_json
from podium.task import TaskSpec

log = logging.getLogger(__name__)

_TRUTH = "__solution__"  # the solution's target column, apart from the submission's


def score_submission(submission_path: str | Path, solution_path: str | Path,
                     spec: TaskSpec, values: str = "auto") -> dict:
    """Score the submission as the leaderboard would: the competition metric, over its label
    space, on what the submission holds. Probabilities (a binary target column holding the
    positive class's, as ``submission.values`` says, or one column per class) are scored as
    they are; labels as their one-hot rows (label sets as 0/1 rows, in any order), values and
    grades as the value column."""
    submission = pd.read_csv(submission_path, dtype=str)
    solution = pd.read_csv(solution_path, dtype=str)[[spec.id_column, spec.target]]
    merged = solution.rename(columns={spec.target: _TRUTH}).merge(
        submission, on=spec.id_column, validate="one_to_one")
    if len(merged) != len(solution):
        raise ValueError(f"{submission_path}: {len(solution) - len(merged)} solution ids missing")
    truth, n = merged[_TRUTH], int(len(merged))
    columns = {c.name: c for c in plan_submission(list(submission.columns), spec, values)}
    target = columns.get(spec.target)
    if target is not None and target.is_probability:  # binary: the positive class's
        positive = merged[spec.target].astype(float).to_numpy()
        return _metric_score(spec, truth, np.stack([1.0 - positive, positive], axis=1), n)
    by_class = {c.class_index: c.name for c in columns.values() if c.name != spec.target}
    if target is None and len(by_class) == spec.n_classes:  # one column per class
        proba = np.stack([merged[by_class[k]].astype(float).to_numpy()
                          for k in range(spec.n_classes)], axis=1)
        return _metric_score(spec, truth, proba, n)
    pred = merged[spec.target]
    if spec.predicts_value:  # values, or grades: the metric scores what was submitted
        held = pred.astype(float).to_numpy()[:, None]
    elif spec.is_multilabel:  # label sets as 0/1 rows: "b a" is "a b"
        held = spec.encode(pred).astype(np.float64)
    else:  # one label per row: its one-hot row
        held = np.eye(spec.n_classes)[spec.encode(pred)]
    return _metric_score(spec, truth, held, n)


def _metric_score(spec: TaskSpec, truth: pd.Series, proba: np.ndarray, n: int) -> dict:
    score = get_metric(spec.metric)(spec.encode(truth), proba, spec.label_space)
    return {"metric": spec.metric, "score": float(score), "n": n}


def write_score(score: dict, path: str, unit: str) -> None:
    """Write ``score.json`` and print the held-out score where the user looks."""
    write_json(score, path)
    message = f"held-out {score['metric']}: {score['score']:.4f} on {score['n']} test {unit}"
    log.info(message)
    print(f"\npodium: {message}\n", flush=True)
