"""Score a submission against a held-out solution (the embedded default keeps one)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from podium.metrics import get_metric
from podium.task import TaskSpec, split_labels


def score_submission(submission_path: str | Path, solution_path: str | Path,
                     spec: TaskSpec) -> dict:
    """The submitted labels against the solution's ids: accuracy (exact match; for
    multilabel the label sets, in any order), rmse of the values for regression, qwk of the
    grades over the competition's grade range for ordinal."""
    submission = pd.read_csv(submission_path, dtype=str)
    solution = pd.read_csv(solution_path, dtype=str)
    merged = solution.merge(submission, on=spec.id_column, suffixes=("_true", "_pred"),
                            validate="one_to_one")
    if len(merged) != len(solution):
        raise ValueError(f"{submission_path}: {len(solution) - len(merged)} solution ids missing")
    truth, pred = merged[f"{spec.target}_true"], merged[f"{spec.target}_pred"]
    if spec.predicts_value:
        name = "rmse" if spec.task == "regression" else "qwk"
        values = pred.astype(float).to_numpy()[:, None]
        score = get_metric(name)(truth.astype(float).to_numpy(), values, spec.label_space)
        return {"metric": name, "score": float(score), "n": int(len(merged))}
    if spec.is_multilabel:  # label sets: "b a" is "a b"
        truth, pred = truth.map(_label_set), pred.map(_label_set)
    return {"metric": "accuracy", "score": float((truth == pred).mean()), "n": int(len(merged))}


def _label_set(cell: str) -> frozenset[str]:
    return frozenset(split_labels(cell))
