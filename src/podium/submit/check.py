"""Check a submission table before it is written: the sample's ids, order and columns, no
empty values, and values each column can hold (probabilities in [0, 1], labels of the label
space). An error names the CSV line (the header is line 1), the id and the column.

:func:`check_table` is the task-free part (mask submissions add their own RLE check to it);
:func:`check_submission` adds the value checks of a classification or value submission.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import numpy as np
import pandas as pd

from podium.errors import PodiumInputError
from podium.submit.submission import VALUE, plan_submission
from podium.task import TaskSpec, split_labels


def _where(frame: pd.DataFrame, row: int, id_column: str, column: str) -> str:
    """``submission line 5 (id '12'), column 'label'``: line 1 is the header."""
    return (f"submission line {row + 2} (id {str(frame[id_column].iloc[row])!r}), "
            f"column {column!r}")


def _refuse(frame: pd.DataFrame, bad: np.ndarray, id_column: str, column: str,
            what: Callable[[object], str]) -> None:
    """Raise for the first row of ``bad``, saying how many more rows fail the same way."""
    rows = np.flatnonzero(bad)
    if len(rows):
        value = frame[column].iloc[rows[0]]
        more = f" ({len(rows) - 1} more rows like it)" if len(rows) > 1 else ""
        raise PodiumInputError(f"{_where(frame, rows[0], id_column, column)}: {value!r} "
                               f"{what(value)}{more}; nothing was written.")


def check_table(frame: pd.DataFrame, sample: pd.DataFrame, id_column: str,
                allow_empty: Collection[str] = ()) -> None:
    """The sample's columns in its order, its ids in its order, and no empty or missing value
    outside ``allow_empty`` (e.g. an empty mask's RLE)."""
    missing = [c for c in sample.columns if c not in frame.columns]
    extra = [c for c in frame.columns if c not in sample.columns]
    if missing or extra or list(frame.columns) != list(sample.columns):
        raise PodiumInputError(
            f"submission columns {list(frame.columns)} are not the sample submission's "
            f"{list(sample.columns)}" + (f"; missing {missing}" if missing else "")
            + (f"; not in the sample {extra}" if extra else "") + "; nothing was written.")
    if len(frame) != len(sample):
        raise PodiumInputError(f"submission has {len(frame)} rows, the sample submission "
                               f"{len(sample)}; nothing was written.")
    ids = frame[id_column].astype(str).to_numpy()
    expected = sample[id_column].astype(str).to_numpy()
    wrong = np.flatnonzero(ids != expected)
    if len(wrong):
        row = wrong[0]
        raise PodiumInputError(
            f"{_where(frame, row, id_column, id_column)}: the sample submission has id "
            f"{expected[row]!r} on this line; a submission keeps the sample's ids in its order "
            f"({len(wrong)} lines differ); nothing was written.")
    for column in frame.columns:
        if column in allow_empty:
            continue
        values = frame[column]
        empty = values.isna().to_numpy() | values.map(
            lambda v: isinstance(v, str) and not v.strip()).to_numpy(dtype=bool)
        _refuse(frame, empty, id_column, column, lambda _: "is empty")


def _numbers(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)


def check_probabilities(frame: pd.DataFrame, column: str, id_column: str) -> None:
    """Every value a finite number in [0, 1]."""
    p = _numbers(frame[column])
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(p) | (p < 0) | (p > 1)
    _refuse(frame, bad, id_column, column, lambda _: "is not a probability in [0, 1]")


def check_labels(frame: pd.DataFrame, column: str, spec: TaskSpec) -> None:
    """Every value in the task's label space: a class (binary, multiclass), a set of classes
    (multilabel), a whole grade within the grades' range (ordinal), a finite number
    (regression)."""
    values, id_column = frame[column], spec.id_column
    if spec.task == "regression":
        bad = ~np.isfinite(_numbers(values))
        _refuse(frame, bad, id_column, column, lambda _: "is not a finite number")
        return
    if spec.task == "ordinal":
        grades = [float(c) for c in spec.classes]
        lo, hi = min(grades), max(grades)
        v = _numbers(values)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(v) | (v != np.rint(v)) | (v < lo) | (v > hi)
        _refuse(frame, bad, id_column, column,
                lambda _: f"is not a whole grade from {lo:g} to {hi:g}")
        return
    known = set(spec.classes)
    shown = ", ".join(map(repr, spec.classes[:10])) + (", ..." if spec.n_classes > 10 else "")
    if spec.is_multilabel:
        bad = values.map(lambda v: not set(split_labels(str(v))) <= known).to_numpy(bool)
        _refuse(frame, bad, id_column, column, lambda v: (
            f"holds labels that are no class: "
            f"{sorted(set(split_labels(str(v))) - known)} (classes: {shown})"))
        return
    bad = ~values.astype(str).isin(known).to_numpy()
    _refuse(frame, bad, id_column, column, lambda _: f"is not a class ({shown})")


def check_submission(frame: pd.DataFrame, sample: pd.DataFrame, spec: TaskSpec,
                     values: str = "auto") -> None:
    """Refuse a submission that Kaggle would reject or misread, before it is written: the
    table checks of :func:`check_table`, then each column's values as
    :func:`~podium.submit.submission.plan_submission` says it holds them."""
    check_table(frame, sample, spec.id_column)
    for column in plan_submission(list(sample.columns), spec, values):
        if column.is_probability:
            check_probabilities(frame, column.name, spec.id_column)
        elif column.holds == VALUE:
            bad = ~np.isfinite(_numbers(frame[column.name]))
            _refuse(frame, bad, spec.id_column, column.name, lambda _: "is not a finite number")
        else:
            check_labels(frame, column.name, spec)
