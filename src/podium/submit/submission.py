"""Write submission.csv in exactly the sample submission's ids, order and columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from podium.errors import PodiumInputError
from podium.task import TaskSpec


def format_submission(sample: pd.DataFrame, predictions: pd.DataFrame, spec: TaskSpec
                      ) -> pd.DataFrame:
    """Fill the sample's columns: the target column gets class labels (for multilabel the
    space-separated set at 0.5, never empty), class columns get probabilities (named
    ``<class>`` or ``p_<class>``)."""
    proba = predictions.set_index("id").loc[sample[spec.id_column],
                                            spec.prediction_columns].to_numpy()
    out = sample[[spec.id_column]].copy()
    by_name = {} if spec.predicts_value else {c: i for i, c in enumerate(spec.classes)}
    by_name.update({f"p_{c}": i for i, c in enumerate(spec.classes)} if by_name else {})
    for column in sample.columns:
        if column == spec.id_column:
            continue
        if column == spec.target:
            out[column] = spec.decode(proba)
        elif column in by_name:
            out[column] = proba[:, by_name[column]]
        else:
            raise PodiumInputError(
                f"sample submission column {column!r} is neither the target "
                f"(config key competition.target = {spec.target!r}) nor a class "
                f"({list(spec.classes)[:10]}); podium cannot fill it."
            )
    return out


def read_sample(path: str | Path, encoding: str = "utf-8") -> pd.DataFrame:
    """The sample submission, ids as strings exactly as written (``encoding``: the config's
    competition.encoding, which ingest checked the file against)."""
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)


def apply_leak_labels(predictions: pd.DataFrame, leaks: pd.DataFrame, spec: TaskSpec
                      ) -> pd.DataFrame:
    """Test rows that duplicate train images get their train label with probability 1 (for
    multilabel, every label of the train image's set; for regression and ordinal, the train
    image's value).

    Clusters whose train labels disagree are left to the model.
    """
    trusted = leaks[~leaks["label_conflict"].astype(bool)]
    label_of = dict(zip(trusted["test_id"].astype(str), trusted["train_label"].astype(str),
                        strict=True))
    out = predictions.copy()
    rows = out["id"].astype(str).isin(label_of)
    labels = spec.encode(out.loc[rows, "id"].astype(str).map(label_of))
    if spec.predicts_value:
        labels = labels[:, None]
    elif not spec.is_multilabel:
        labels = np.eye(spec.n_classes)[labels]
    out.loc[rows, spec.prediction_columns] = labels.astype(float)
    return out
