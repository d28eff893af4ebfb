"""The classify plug-in's targets at ingest: classes, label sets, grades and values.

Binary and multiclass targets are one class per image, multilabel ones a space-separated
label set (or one 0/1 column per label, ``competition.label_columns``), regression targets a
finite number and ordinal ones a whole-number grade. Every label is checked by line; the
classes are ``competition.classes`` or the labels train holds, in natural order.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from podium.data.ingest import require_columns
from podium.data.layout import CompetitionLayout
from podium.data.targets import TaskTargets, register_targets
from podium.errors import PodiumInputError, Problems
from podium.metrics import check_multilabel_rule
from podium.task import (
    CLASSIFICATION_TASKS,
    LABEL_SEPARATOR,
    VALUE_TASKS,
    TaskSpec,
    split_labels,
)


class LabelTargets(TaskTargets):
    """Targets of binary, multiclass, multilabel, regression and ordinal competitions."""

    def check_layout(self, layout: CompetitionLayout) -> None:
        check_multilabel_rule(layout.multilabel_rule)

    def train_table(self, train: pd.DataFrame, path: Path, layout: CompetitionLayout,
                    problems: Problems
                    ) -> tuple[pd.DataFrame, CompetitionLayout, tuple[str, ...] | None]:
        if layout.label_columns:
            train, layout = _labels_from_columns(train, path, layout)
        return train, layout, None

    def check_labels(self, labels: pd.Series, path: Path, layout: CompetitionLayout,
                     problems: Problems) -> tuple[str, ...]:
        return _check_labels(labels, path, layout, problems)

    def normalized(self, labels: pd.Series, layout: CompetitionLayout,
                   classes: tuple[str, ...]) -> pd.Series:
        return normalized_labels(labels, layout.task, classes)

    def check_external(self, labels: pd.Series, path: Path, column: str,
                       layout: CompetitionLayout, classes: tuple[str, ...],
                       problems: Problems) -> None:
        if layout.task in VALUE_TASKS:
            _check_values(labels, path, column, layout.task, None, problems)
        else:
            _report_bad_labels(labels, path, column, classes, "the competition's classes",
                               problems, layout.task == "multilabel")

    def stratification(self, labels: pd.Series, spec: TaskSpec
                       ) -> tuple[np.ndarray, tuple[str, ...] | None]:
        """The encoded labels (regression values are binned by the folds); the classes, or
        the grades of an ordinal task, are counted against the folds."""
        return spec.encode(labels), None if spec.task == "regression" else spec.classes


def _report_bad_labels(
    labels: pd.Series, path: Path, column: str, classes: tuple[str, ...] | None,
    classes_name: str, problems: Problems, multilabel: bool = False,
) -> None:
    """Empty labels, and (when ``classes`` is given) labels outside them, by line; in a
    multilabel task every space-separated label of a cell is checked."""
    allowed = set(classes) if classes is not None else None
    for row, value in labels.items():
        line = int(row) + 2  # header is line 1
        if value.strip() == "":
            problems.add(f"{path} line {line}: label column {column!r} is empty")
            continue
        if allowed is None:
            continue
        unknown = [v for v in (split_labels(value) if multilabel else [value])
                   if v not in allowed]
        if unknown:
            problems.add(f"{path} line {line}: label {unknown[0]!r} is not one of "
                         f"{classes_name} {list(classes)[:20]}")


def _check_labels(
    labels: pd.Series, path: Path, layout: CompetitionLayout, problems: Problems
) -> tuple[str, ...]:
    """Labels must be present and belong to the task's classes; returns the class order
    (the grades for ordinal tasks, none for regression)."""
    if layout.task in VALUE_TASKS:
        return _check_values(labels, path, layout.target, layout.task, layout.classes,
                             problems)
    multilabel = layout.task == "multilabel"
    if layout.classes is None:
        present = (v for cell in labels for v in (split_labels(cell) if multilabel else [cell]))
        classes = tuple(sorted({v for v in present if v.strip() != ""}, key=_class_sort_key))
        _report_bad_labels(labels, path, layout.target, None, "", problems)
    else:
        classes = tuple(str(c) for c in layout.classes)
        _report_bad_labels(labels, path, layout.target, classes,
                           "the classes in config key competition.classes", problems,
                           multilabel)
    if layout.task == "binary" and len(classes) != 2:
        problems.add(
            f"{path}: task is binary but column {layout.target!r} has {len(classes)} classes "
            f"{list(classes)[:10]}; set competition.task to multiclass or fix the labels"
        )
    _check_two_classes(labels, path, layout.target, multilabel, problems)
    return classes


def _check_two_classes(labels: pd.Series, path: Path, column: str, multilabel: bool,
                       problems: Problems) -> None:
    """A classifier needs two classes in train: one class everywhere is nothing to learn
    (usually competition.target names the wrong column)."""
    cells = labels[labels.str.strip() != ""]
    present = {v for cell in cells for v in (split_labels(cell) if multilabel else [cell])}
    if len(present) == 1:
        (only,) = present
        problems.add(
            f"{path}: every one of its {len(cells)} labelled rows has the class {only!r} in "
            f"column {column!r}; a classifier needs at least two classes in train. Check "
            "that competition.target names the label column, or add images of other classes")


def _labels_from_columns(train: pd.DataFrame, path: Path, layout: CompetitionLayout
                         ) -> tuple[pd.DataFrame, CompetitionLayout]:
    """A multilabel train.csv with one 0/1 column per label, turned into the space-separated
    target column the rest of podium reads; the label columns are the classes, in order."""
    if layout.task != "multilabel":
        raise PodiumInputError(
            f"config key competition.label_columns needs task multilabel, not {layout.task!r}."
        )
    columns = list(layout.label_columns)
    require_columns(train, path, [(c, "competition.label_columns") for c in columns])
    problems = Problems()
    for column in columns:
        for row, value in train[column].items():
            if value.strip() not in ("0", "1"):
                problems.add(f"{path} line {int(row) + 2}: label column {column!r} holds "
                             f"{value!r}, not 0 or 1")
    problems.raise_if_any(f"{path}: label columns")
    chosen = train[columns].apply(lambda col: col.str.strip() == "1")
    target = [LABEL_SEPARATOR.join(c for c, on in zip(columns, row, strict=True) if on)
              for row in chosen.itertuples(index=False)]
    empty = [int(row) + 2 for row, cell in zip(train.index, target, strict=True) if not cell]
    if empty:
        raise PodiumInputError(
            f"{path} lines {empty[:10]}: no label column is 1; every image needs a label."
        )
    return (train.assign(**{layout.target: target}),
            replace(layout, classes=tuple(columns), label_columns=None))


def _check_values(labels: pd.Series, path: Path, column: str, task: str,
                  classes: tuple[str, ...] | None, problems: Problems) -> tuple[str, ...]:
    """Regression targets must be finite numbers, ordinal ones whole numbers (grades)."""
    numbers = pd.to_numeric(labels.str.strip(), errors="coerce")
    ordinal = task == "ordinal"
    for row, value in labels.items():
        number = numbers.loc[row]
        if not np.isfinite(number) or (ordinal and number != round(number)):
            kind = "a whole-number grade" if ordinal else "a finite number"
            problems.add(f"{path} line {int(row) + 2}: target {value!r} in column "
                         f"{column!r} is not {kind} (task {task})")
    if not ordinal:
        return ()
    if classes is not None:
        return tuple(str(int(float(c))) for c in classes)
    grades = numbers[np.isfinite(numbers)]
    return tuple(str(int(g)) for g in sorted(set(grades.round().astype(int))))


def _class_sort_key(value: str) -> tuple[int, float, str]:
    """Finite numeric labels sort as numbers (2 before 10), the rest as strings after them;
    ties break on the string, so the order never depends on set iteration."""
    try:
        number = float(value)
    except ValueError:
        return (1, 0.0, value)
    return (0, number, value) if math.isfinite(number) else (1, 0.0, value)


def normalized_labels(labels: pd.Series, spec_task: str, classes: tuple[str, ...]
                      ) -> pd.Series:
    """Multilabel cells rewritten as their label set in class order ("7 3 3" -> "3 7"), and
    numbers in one spelling ("3.0" -> "3" for grades), so equal labels compare equal (dedup's
    label conflicts); other tasks are left as they are."""
    if spec_task == "ordinal":
        return labels.map(lambda v: str(int(float(v))))
    if spec_task == "regression":
        return labels.map(lambda v: repr(float(v)))
    if spec_task != "multilabel":
        return labels
    order = {c: i for i, c in enumerate(classes)}
    return labels.map(lambda v: LABEL_SEPARATOR.join(sorted(set(split_labels(v)),
                                                            key=order.__getitem__)))


register_targets(CLASSIFICATION_TASKS + VALUE_TASKS, LabelTargets())
