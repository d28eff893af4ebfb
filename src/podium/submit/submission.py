"""Write submission.csv in exactly the sample submission's ids, order and columns.

What a column named like the target holds follows the competition metric (config key
``submission.values``, default ``auto``): a metric that scores probabilities (auc, logloss)
gets the positive class's probability in a binary competition, a metric that scores labels
gets labels. Kaggle scores whatever the column holds, so labels under AUC score the labels'
ranking, far below the model's own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from podium.errors import PodiumInputError
from podium.metrics import get_metric
from podium.task import TaskSpec

log = logging.getLogger(__name__)

PROBABILITY, LABEL, VALUE = "probability", "label", "value"
VALUES = ("auto", PROBABILITY, LABEL)  # config key submission.values


@dataclass(frozen=True)
class SubmissionColumn:
    """What one sample column receives: a class's probability, or labels (the class, the
    label set of a multilabel task, the grade or the value), and why; ``warn`` marks labels
    where the metric scores probabilities but the column cannot hold them."""

    name: str
    holds: str
    class_index: int | None = None  # the class whose probability the column holds
    reason: str = ""
    warn: bool = False

    @property
    def is_probability(self) -> bool:
        return self.holds == PROBABILITY


_LABEL_KIND = {"regression": "value", "ordinal": "grade", "multilabel": "label set"}


def target_column(spec: TaskSpec, values: str = "auto") -> SubmissionColumn:
    """What the column named like the target holds: under ``auto`` probabilities when the
    metric scores them and the column can hold them (binary: the positive class's, the second
    of ``spec.classes``), for an ordinal task scored on values (rmse, mae) the value,
    labels otherwise; ``probability`` or ``label`` force it."""
    if values not in VALUES:
        raise PodiumInputError(f"config key submission.values: {values!r} is not one of "
                               f"{', '.join(VALUES)}.")
    name, metric, binary = spec.target, get_metric(spec.metric), spec.task == "binary"
    if values == PROBABILITY and not binary:
        raise PodiumInputError(
            f"config key submission.values: probability, but the single column {name!r} of a "
            f"{spec.task} submission cannot hold probabilities (only a binary target column "
            "can: the positive class's); Kaggle's probability submissions for this task have "
            "one column per class. Use auto or label.")
    if binary and (values == PROBABILITY or values == "auto" and metric.probabilistic):
        why = ("submission.values: probability" if values == PROBABILITY
               else f"metric {metric.name} scores probabilities")
        return SubmissionColumn(name, PROBABILITY, 1, f"the probability of the positive class "
                                                      f"{spec.classes[1]!r} ({why})")
    if spec.task == "ordinal" and values == "auto" and not metric.scores_decisions:
        return SubmissionColumn(name, VALUE, reason=(
            f"the predicted value (metric {metric.name} scores values; rounding to a grade "
            "would score worse than CV says; submission.values: label writes grades)"))
    kind = _LABEL_KIND.get(spec.task, "most likely class")
    if values == LABEL:
        return SubmissionColumn(name, LABEL, reason=f"the {kind} (submission.values: label)")
    if metric.probabilistic:
        return SubmissionColumn(name, LABEL, warn=True, reason=(
            f"the {kind}: metric {metric.name} scores probabilities, but one column cannot "
            f"hold the {spec.n_classes} classes' probabilities (a sample submission with a "
            "column per class gets them)"))
    scored = "values" if spec.predicts_value else "labels"
    return SubmissionColumn(name, LABEL, reason=f"the {kind} (metric {metric.name} scores "
                                                f"{scored})")


def plan_submission(columns: list[str], spec: TaskSpec, values: str = "auto"
                    ) -> list[SubmissionColumn]:
    """What each of the sample's columns but the id gets: the target column as
    :func:`target_column` says, columns named like a class (``<class>`` or ``p_<class>``) that
    class's probability; any other column is an error."""
    by_name = {} if spec.predicts_value else {c: i for i, c in enumerate(spec.classes)}
    by_name.update({f"p_{c}": i for i, c in enumerate(spec.classes)} if by_name else {})
    plan = []
    for column in columns:
        if column == spec.id_column:
            continue
        if column == spec.target:
            plan.append(target_column(spec, values))
        elif column in by_name:
            plan.append(SubmissionColumn(column, PROBABILITY, by_name[column], (
                f"the probability of class {spec.classes[by_name[column]]!r} (a class column)")))
        else:
            raise PodiumInputError(
                f"sample submission column {column!r} is neither the target "
                f"(config key competition.target = {spec.target!r}) nor a class "
                f"({list(spec.classes)[:10]}); podium cannot fill it."
            )
    return plan


def format_submission(sample: pd.DataFrame, predictions: pd.DataFrame, spec: TaskSpec,
                      values: str = "auto") -> pd.DataFrame:
    """Fill the sample's columns as :func:`plan_submission` says (labels come from
    ``spec.decode``: for multilabel the label set under competition.multilabel_rule), and log
    what each column holds and why."""
    proba = predictions.set_index("id").loc[sample[spec.id_column],
                                            spec.prediction_columns].to_numpy()
    out = sample[[spec.id_column]].copy()
    plan = plan_submission(list(sample.columns), spec, values)
    for column in plan:
        if column.is_probability:
            out[column.name] = proba[:, column.class_index]
        elif column.holds == VALUE:
            out[column.name] = [f"{v:.10g}" for v in proba[:, 0]]
        else:
            out[column.name] = spec.decode(proba)
        if column.name == spec.target:
            log.log(logging.WARNING if column.warn else logging.INFO, "column %r gets %s",
                    column.name, column.reason)
    by_class = [c.name for c in plan if c.name != spec.target]
    if by_class:
        log.info("%d class columns (%s) get their class's probability", len(by_class),
                 ", ".join(map(repr, by_class[:5])) + (", ..." if len(by_class) > 5 else ""))
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
