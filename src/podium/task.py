"""The competition's task: its type, classes, metric and prediction columns.

Ingest writes it once to ``data/task.json``; every later stage reads it from there instead of
re-deriving classes from labels, so all stages agree on class order and column names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from podium.metrics import DEFAULT_MULTILABEL_RULE, LabelSpace, decide_multilabel
from podium.tables import read_json, write_json

CLASSIFICATION_TASKS = ("binary", "multiclass", "multilabel")
VALUE_TASKS = ("regression", "ordinal")  # one predicted number per image, column ``pred``
LABEL_SEPARATOR = " "  # multilabel targets: "3 7 12", Kaggle's usual form
TARGET_COLUMN = "target"
"""The manifest's label column, whatever the competition calls its own (``TaskSpec.target``
names that one, in the competition's files only), so a target named ``source``, ``split`` or
``path`` never collides with podium's columns."""


def split_labels(value: str) -> list[str]:
    """The labels of one multilabel cell (space-separated; extra spaces are ignored)."""
    return value.split()


@dataclass(frozen=True)
class TaskSpec:
    """What is predicted and how it is scored."""

    task: str
    target: str
    classes: tuple[str, ...]
    metric: str
    id_column: str
    multilabel_rule: str = DEFAULT_MULTILABEL_RULE  # how label sets are decided (metrics)
    # the task plug-in's own competition keys as ingest resolved them (podium.schema.task_keys:
    # a segmentation competition's RLE format and pixel order, class rows, instances); the
    # plug-in reads them through its own typed view
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def predicts_value(self) -> bool:
        """Regression and ordinal tasks predict one number, not class probabilities."""
        return self.task in VALUE_TASKS

    @property
    def output_kind(self) -> str:
        """How model outputs become predictions: softmax, sigmoid (multilabel) or value."""
        return "value" if self.predicts_value else "sigmoid" if self.is_multilabel else "softmax"

    @property
    def n_outputs(self) -> int:
        """Width of the model's last layer."""
        return 1 if self.predicts_value else self.n_classes

    @property
    def prediction_columns(self) -> list[str]:
        """``p_<class>`` for every class, in class order, or ``pred`` for regression and
        ordinal targets (DESIGN.md's contract)."""
        return ["pred"] if self.predicts_value else [f"p_{c}" for c in self.classes]

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def is_multilabel(self) -> bool:
        """Each image has a set of labels, one independent probability per class."""
        return self.task == "multilabel"

    def encode(self, labels: pd.Series) -> np.ndarray:
        """Class indices of string-or-number labels in this spec's class order, for a
        multilabel task an ``n x n_classes`` 0/1 matrix of space-separated label sets, and
        for regression and ordinal tasks the numbers as floats."""
        if self.predicts_value:
            return labels.astype(float).to_numpy(dtype=np.float64)
        index = {c: i for i, c in enumerate(self.classes)}
        if not self.is_multilabel:
            return labels.astype(str).map(index).to_numpy(dtype=np.int64)
        matrix = np.zeros((len(labels), self.n_classes), dtype=np.int64)
        for row, value in enumerate(labels.astype(str)):
            matrix[row, [index[label] for label in split_labels(value)]] = 1
        return matrix

    @property
    def label_space(self) -> LabelSpace:
        """What every metric scores over: for ordinal tasks every whole grade from the
        lowest to the highest class (train's grades, or ``competition.classes``), never a
        fold's; for multilabel tasks the competition's decision rule."""
        if self.task == "ordinal" and self.classes:
            return LabelSpace.from_grades(self.classes, self.multilabel_rule)
        return LabelSpace(None, self.multilabel_rule)

    def grades(self, values: np.ndarray) -> np.ndarray:
        """Ordinal predictions as integer grades: rounded, and clipped to the competition's
        grade range."""
        return self.label_space.to_grades(values)

    def decide(self, proba: np.ndarray) -> np.ndarray:
        """Multilabel decisions (0/1 per class) under the competition's rule, as CV scores
        them (:func:`podium.metrics.decide_multilabel`)."""
        return decide_multilabel(proba, self.multilabel_rule)

    def decode(self, proba: np.ndarray) -> list[str]:
        """Submission labels: the most likely class; for multilabel the label set that
        :meth:`decide` gives (CV scores the same sets); the value for regression, the grade
        for ordinal."""
        if self.task == "regression":
            return [f"{v:.10g}" for v in proba[:, 0]]
        if self.task == "ordinal":
            return [str(g) for g in self.grades(proba[:, 0])]
        classes = np.asarray(self.classes)
        if not self.is_multilabel:
            return classes[proba.argmax(axis=1)].tolist()
        return [LABEL_SEPARATOR.join(classes[row.astype(bool)]) for row in self.decide(proba)]

    def save(self, path: str | Path) -> None:
        write_json({**asdict(self), "classes": list(self.classes),
                    "options": dict(self.options)}, path)

    @classmethod
    def load(cls, path: str | Path) -> TaskSpec:
        data = read_json(path)
        return cls(**{**data, "classes": tuple(data["classes"])})
