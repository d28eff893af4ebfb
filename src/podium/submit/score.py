"""Score a submission against a held-out solution (the embedded default keeps one)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from podium.task import TaskSpec


def score_submission(submission_path: str | Path, solution_path: str | Path,
                     spec: TaskSpec) -> dict:
    """Accuracy of the submitted labels on the solution's ids."""
    submission = pd.read_csv(submission_path, dtype=str)
    solution = pd.read_csv(solution_path, dtype=str)
    merged = solution.merge(submission, on=spec.id_column, suffixes=("_true", "_pred"),
                            validate="one_to_one")
    if len(merged) != len(solution):
        raise ValueError(f"{submission_path}: {len(solution) - len(merged)} solution ids missing")
    truth, pred = merged[f"{spec.target}_true"], merged[f"{spec.target}_pred"]
    return {"metric": "accuracy", "score": float((truth == pred).mean()), "n": int(len(merged))}
