"""One metric registry for early stopping, CV, the leaderboard and scoring.

Every metric takes the encoded truth (class index per row for binary and multiclass, an
``n_rows x n_classes`` 0/1 matrix for multilabel) and the probability matrix
``(n_rows, n_classes)`` that the models write (one ``pred`` column for regression and
ordinal), so every stage scores the same way. A 2-D truth means multilabel: each class is then
an independent yes/no at ``MULTILABEL_THRESHOLD``; a single prediction column is a value
(rmse, mae), rounded to the nearest grade for qwk and accuracy.
Look a metric up by its config name with :func:`get_metric`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn import metrics as skm

from podium.errors import PodiumInputError, did_you_mean


@dataclass(frozen=True)
class Metric:
    """A named score with its direction, so leaderboards and early stopping sort correctly."""

    name: str
    func: Callable[[np.ndarray, np.ndarray], float]
    greater_is_better: bool
    probabilistic: bool = False  # scores probabilities, so a submission should hold them

    def __call__(self, y_true: np.ndarray, proba: np.ndarray) -> float:
        return float(self.func(np.asarray(y_true), np.asarray(proba, dtype=np.float64)))

    def is_better(self, candidate: float, incumbent: float) -> bool:
        """True when ``candidate`` beats ``incumbent`` under this metric's direction."""
        if np.isnan(incumbent):
            return not np.isnan(candidate)
        return candidate > incumbent if self.greater_is_better else candidate < incumbent


MULTILABEL_THRESHOLD = 0.5


def _multilabel(y: np.ndarray) -> bool:
    return y.ndim == 2


def _values(p: np.ndarray) -> bool:
    """One prediction column: a regression or ordinal value rather than probabilities."""
    return p.ndim == 2 and p.shape[1] == 1


def _predicted(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Hard predictions: the argmax class, for multilabel the 0/1 matrix at 0.5, and for a
    value column the nearest grade within the range of the truth (ordinal)."""
    if _values(p):
        return np.clip(np.rint(p[:, 0]), y.min(), y.max()).astype(int)
    return (p >= MULTILABEL_THRESHOLD).astype(int) if _multilabel(y) else p.argmax(axis=1)


def _accuracy(y: np.ndarray, p: np.ndarray) -> float:
    return skm.accuracy_score(y, _predicted(y, p))  # multilabel: exact-set match


def _logloss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-15, 1.0 - 1e-15 if _multilabel(y) else 1.0)
    if _multilabel(y):  # mean binary cross-entropy over classes
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    p = p / p.sum(axis=1, keepdims=True)
    return skm.log_loss(y, p, labels=np.arange(p.shape[1]))


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    if _multilabel(y):  # macro over the classes that have both outcomes
        scored = [c for c in range(y.shape[1]) if 0 < y[:, c].sum() < len(y)]
        return float(np.mean([skm.roc_auc_score(y[:, c], p[:, c]) for c in scored])
                     ) if scored else float("nan")
    if p.shape[1] == 2:
        return skm.roc_auc_score(y, p[:, 1])
    return skm.roc_auc_score(y, p, multi_class="ovr", labels=np.arange(p.shape[1]))


def _f1(average: str) -> Callable[[np.ndarray, np.ndarray], float]:
    def f1(y: np.ndarray, p: np.ndarray) -> float:
        labels = None if _multilabel(y) else np.arange(p.shape[1])
        return skm.f1_score(y, _predicted(y, p), average=average, labels=labels,
                            zero_division=0.0)

    return f1


def _qwk(y: np.ndarray, p: np.ndarray) -> float:
    return skm.cohen_kappa_score(np.asarray(y).astype(int), _predicted(y, p),
                                 weights="quadratic")


def _rmse(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.sqrt(np.mean((p[:, 0] - y) ** 2)))


def _mae(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.mean(np.abs(p[:, 0] - y)))


def _mask_metric(name: str) -> Callable[[np.ndarray, np.ndarray], float]:
    """Mean per-image Dice or IoU of ``N x H x W`` probability maps (at 0.5) or 0/1 masks
    against 0/1 truth masks (podium.segment.metrics; imported late, segmentation only)."""
    def score(y: np.ndarray, p: np.ndarray) -> float:
        from podium.segment import metrics

        masks = p if p.dtype == np.uint8 else (p >= 0.5).astype(np.uint8)
        return getattr(metrics, f"mean_{name}")(masks, y)
    return score


def _instance_map(y: np.ndarray, p: np.ndarray) -> float:
    """DSB 2018's mean average precision over IoU thresholds of ``N x H x W`` instance label
    maps (the registry hands predictions over as floats, so they are rounded back to labels;
    podium.segment.metrics, imported late, segmentation only)."""
    from podium.segment.metrics import mean_instance_average_precision

    return mean_instance_average_precision(list(np.rint(p).astype(np.int64)), list(y))


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("accuracy", _accuracy, True),
        Metric("logloss", _logloss, False, probabilistic=True),
        Metric("auc", _auc, True, probabilistic=True),
        Metric("f1_macro", _f1("macro"), True),
        Metric("f1_micro", _f1("micro"), True),
        Metric("qwk", _qwk, True),
        Metric("rmse", _rmse, False),
        Metric("mae", _mae, False),
        Metric("dice", _mask_metric("dice"), True),
        Metric("iou", _mask_metric("iou"), True),
        Metric("instance_map", _instance_map, True),
    )
}


_CLASSES = ("binary", "multiclass", "multilabel")
METRIC_TASKS: dict[str, tuple[str, ...]] = {
    "accuracy": (*_CLASSES, "ordinal"), "logloss": _CLASSES, "auc": _CLASSES,
    "f1_macro": _CLASSES, "f1_micro": _CLASSES, "qwk": ("binary", "multiclass", "ordinal"),
    "rmse": ("regression", "ordinal"), "mae": ("regression", "ordinal"),
    "dice": ("segmentation",), "iou": ("segmentation",), "instance_map": ("segmentation",),
}


def check_metric_for_task(name: str, task: str) -> None:
    """Fail early when the competition metric cannot score the task's predictions."""
    get_metric(name)
    if task not in METRIC_TASKS[name]:
        fitting = sorted(m for m, tasks in METRIC_TASKS.items() if task in tasks)
        raise PodiumInputError(
            f"config key competition.metric: {name!r} does not score {task} predictions; "
            f"use one of {', '.join(fitting)}."
        )


def get_metric(name: str) -> Metric:
    """Look a metric up by name; an unknown name lists the close ones."""
    try:
        return METRICS[name]
    except KeyError:
        hint = did_you_mean(name, METRICS)
        raise PodiumInputError(
            f"config key competition.metric: unknown metric {name!r}.{hint} "
            f"Known metrics: {', '.join(sorted(METRICS))}."
        ) from None
