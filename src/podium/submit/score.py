"""Score a submission against a held-out solution (the embedded default keeps one)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from podium.metrics import get_metric
from podium.submit.submission import plan_submission
from podium.task import TaskSpec, split_labels

_TRUTH = "__solution__"  # the solution's target column, apart from the submission's


def score_submission(submission_path: str | Path, solution_path: str | Path,
                     spec: TaskSpec, values: str = "auto") -> dict:
    """Score the submission as the leaderboard would. Probabilities (a binary target column
    holding the positive class's, as ``submission.values`` says, or one column per class) get
    the competition metric; labels get accuracy (exact match; for multilabel the label sets,
    in any order), rmse of the values for regression, qwk of the grades over the
    competition's grade range for ordinal."""
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
    if spec.predicts_value:
        name = "rmse" if spec.task == "regression" else "qwk"
        score = get_metric(name)(truth.astype(float).to_numpy(),
                                 pred.astype(float).to_numpy()[:, None], spec.label_space)
        return {"metric": name, "score": float(score), "n": n}
    if spec.is_multilabel:  # label sets: "b a" is "a b"
        truth, pred = truth.map(_label_set), pred.map(_label_set)
    return {"metric": "accuracy", "score": float((truth == pred).mean()), "n": n}


def _label_set(cell: str) -> frozenset[str]:
    return frozenset(split_labels(cell))


def _metric_score(spec: TaskSpec, truth: pd.Series, proba: np.ndarray, n: int) -> dict:
    score = get_metric(spec.metric)(spec.encode(truth), proba, spec.label_space)
    return {"metric": spec.metric, "score": float(score), "n": n}
