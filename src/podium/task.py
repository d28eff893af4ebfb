"""The competition's task: its type, classes, metric and prediction columns.

Ingest writes it once to ``data/task.json``; every later stage reads it from there instead of
re-deriving classes from labels, so all stages agree on class order and column names.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from podium.tables import read_json, write_json

CLASSIFICATION_TASKS = ("binary", "multiclass")


@dataclass(frozen=True)
class TaskSpec:
    """What is predicted and how it is scored."""

    task: str
    target: str
    classes: tuple[str, ...]
    metric: str
    id_column: str

    @property
    def prediction_columns(self) -> list[str]:
        """``p_<class>`` for every class, in class order (DESIGN.md's contract)."""
        return [f"p_{c}" for c in self.classes]

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def encode(self, labels: pd.Series) -> np.ndarray:
        """Class indices of string-or-number labels, in this spec's class order."""
        index = {c: i for i, c in enumerate(self.classes)}
        return labels.astype(str).map(index).to_numpy(dtype=np.int64)

    def save(self, path: str | Path) -> None:
        write_json({**asdict(self), "classes": list(self.classes)}, path)

    @classmethod
    def load(cls, path: str | Path) -> TaskSpec:
        data = read_json(path)
        return cls(**{**data, "classes": tuple(data["classes"])})
