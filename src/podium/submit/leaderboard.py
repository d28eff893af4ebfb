"""Rank every model, blend and stacker by its CV score, best first."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from podium.metrics import get_metric
from podium.tables import read_json

LEADERBOARD_COLUMNS = ["name", "kind", "metric", "cv_mean", "cv_std"]


def build_leaderboard(cv_paths: list[str | Path]) -> pd.DataFrame:
    """``name,kind,metric,cv_mean,cv_std`` sorted by the metric's direction, then by std."""
    rows = [read_json(p) for p in cv_paths]
    frame = pd.DataFrame(rows)[LEADERBOARD_COLUMNS]
    metric = get_metric(frame["metric"].iloc[0])
    order = [not metric.greater_is_better, True]
    frame = frame.sort_values(["cv_mean", "cv_std"], ascending=order, kind="stable")
    return frame.reset_index(drop=True)


def best_entry(board: pd.DataFrame, names: Sequence[str],
               files: Sequence[str | Path]) -> tuple[str, str | Path]:
    """The leaderboard's best entry and its file among ``files`` (one per entry of ``names``,
    in that order): what the submission and the report's entry plots read."""
    best = board["name"].iloc[0]
    return best, dict(zip(names, files, strict=True))[best]
