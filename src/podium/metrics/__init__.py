"""One metric registry for early stopping, CV, blend objectives, thresholds, the leaderboard
and the held-out score: one definition per metric, over the competition's label space.

Every metric takes the encoded truth (class index per row for binary and multiclass, an
``n_rows x n_classes`` 0/1 matrix for multilabel, the number for regression and ordinal) and
the predictions the models write: the probability matrix ``(n_rows, n_classes)`` over *every*
class of the competition (so its columns are the class space, whatever a fold holds), or one
``pred`` column of values. What the predictions do not carry comes from a :class:`LabelSpace`
built from ``data/task.json`` (:meth:`podium.task.TaskSpec.label_space`): the competition's
grades (every whole grade from train's lowest to its highest, or ``competition.classes``) for
a value column scored as grades, and the multilabel decision rule shared with
post-processing and the submission. Nothing is ever derived from the truth being scored, so
a fold that lacks a grade or a class scores exactly as the competition would.

Each metric's docstring names the competitions that use it and the reference it matches;
tests/references/ holds it to that reference. Look a metric up by config name with
:func:`get_metric`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from podium.errors import PodiumInputError, did_you_mean

MULTILABEL_THRESHOLD = 0.5
"""A multilabel class is predicted when its probability is at least this (every stage)."""

MULTILABEL_RULES = {
    "at_least_one": "every class at probability >= 0.5, and the most likely class when none "
                    "is (Kaggle scores an empty label set as wrong on every label)",
    "independent": "every class at probability >= 0.5, possibly none (competitions whose "
                   "label sets may be empty)",
}
DEFAULT_MULTILABEL_RULE = "at_least_one"

LOGLOSS_EPS = 1e-15
"""Kaggle's clip for log loss: probabilities are replaced by max(min(p, 1 - eps), eps)."""


class NonFinitePredictions(PodiumInputError):
    """Predictions hold NaN or inf: scoring them would rank garbage (argmax takes NaN as the
    largest value), so every metric refuses them."""


def require_finite(predictions: np.ndarray, what: str) -> None:
    """Stop an entry whose predictions hold NaN or inf before anything scores, blends or
    submits them; ``what`` names the entry (model and fold, or blend, stacker ...)."""
    values = np.asarray(predictions)
    if values.dtype.kind != "f" or len(values) == 0:
        return
    bad_rows = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
    if bad_rows.any():
        first = int(np.flatnonzero(bad_rows)[0])
        raise NonFinitePredictions(
            f"{what}: {int(bad_rows.sum())} of {len(values)} prediction rows hold NaN or inf "
            f"(first: row {first}); nothing downstream scores or submits them. The model "
            "diverged or its input holds NaN: lower lr, set clip_grad_norm, or check the "
            "images; then rerun.")


def check_multilabel_rule(rule: str, key: str = "competition.multilabel_rule") -> str:
    """``rule`` if it is a known multilabel decision rule, else an error naming ``key``."""
    if rule not in MULTILABEL_RULES:
        hint = did_you_mean(rule, MULTILABEL_RULES)
        known = "; ".join(f"{name!r}: {text}" for name, text in MULTILABEL_RULES.items())
        raise PodiumInputError(f"config key {key}: unknown multilabel rule {rule!r}.{hint} "
                               f"Known: {known}.")
    return rule


def decide_multilabel(proba: np.ndarray, rule: str = DEFAULT_MULTILABEL_RULE) -> np.ndarray:
    """The 0/1 decision matrix of multilabel probabilities under the competition's rule:
    class c where ``p_c >= 0.5``, and with ``at_least_one`` the most likely class of a row
    that clears none. CV, post-processing and the submission all decide through here."""
    check_multilabel_rule(rule)
    proba = np.asarray(proba, dtype=np.float64)
    chosen = proba >= MULTILABEL_THRESHOLD
    if rule == "at_least_one" and proba.shape[1]:
        empty = np.flatnonzero(~chosen.any(axis=1))
        chosen[empty, proba[empty].argmax(axis=1)] = True
    return chosen.astype(np.int64)


@dataclass(frozen=True)
class LabelSpace:
    """What a prediction may be, as the competition defines it.

    ``grades`` are the whole grades a value prediction is rounded and clipped to (ordinal
    tasks: every grade from the lowest to the highest, never only those a fold holds);
    ``multilabel_rule`` is the decision rule of multilabel probabilities (see
    :data:`MULTILABEL_RULES`). Class probabilities need nothing more: their columns are the
    competition's classes."""

    grades: tuple[int, ...] | None = None
    multilabel_rule: str = DEFAULT_MULTILABEL_RULE

    def __post_init__(self) -> None:
        check_multilabel_rule(self.multilabel_rule)
        if self.grades is not None and len(self.grades) == 0:
            raise ValueError("a label space's grades must not be empty")

    @classmethod
    def from_grades(cls, grades: tuple[int | float | str, ...] | list,
                    multilabel_rule: str = DEFAULT_MULTILABEL_RULE) -> LabelSpace:
        """The full grade range ``min..max`` of the given grades (as Kaggle's QWK takes
        ``min_rating`` and ``max_rating``): a grade nobody holds still counts."""
        values = [int(round(float(g))) for g in grades]
        return cls(tuple(range(min(values), max(values) + 1)), multilabel_rule)

    def grade_index(self, values: np.ndarray, what: str = "predictions") -> np.ndarray:
        """Values as indices into :attr:`grades`: rounded to the nearest whole grade and
        clipped to the competition's lowest and highest grade."""
        if self.grades is None:
            raise PodiumInputError(
                f"{what} are values scored as grades, but the label space has no grades; "
                "score them with the task's label space (TaskSpec.label_space).")
        lo, hi = self.grades[0], self.grades[-1]
        return (np.clip(np.rint(np.asarray(values, dtype=np.float64)), lo, hi) - lo
                ).astype(np.int64)

    def to_grades(self, values: np.ndarray) -> np.ndarray:
        """Values as the competition's grades (rounded, then clipped to its range)."""
        return self.grade_index(values) + (self.grades[0] if self.grades else 0)


@dataclass(frozen=True)
class Metric:
    """A named score with its direction, so leaderboards and early stopping sort correctly.

    ``tasks`` are the task types it can score; ``probabilistic`` metrics score probabilities
    themselves (AUC, log loss), so a submission for them carries probabilities;
    ``scores_decisions`` metrics score hard decisions (a class, a label set, a grade), the
    others the raw prediction (probabilities, or the value for rmse and mae), so an ordinal
    submission scored by rmse carries the value, not the rounded grade."""

    name: str
    func: Callable[[np.ndarray, np.ndarray, LabelSpace], float]
    greater_is_better: bool
    tasks: tuple[str, ...]
    probabilistic: bool = False
    scores_decisions: bool = True
    as_float64: bool = True  # False: predictions scored as given (float16 masks, label maps)

    def __call__(self, y_true: np.ndarray, proba: np.ndarray,
                 space: LabelSpace | None = None) -> float:
        y = np.asarray(y_true)
        p = np.asarray(proba, np.float64) if self.as_float64 else np.asarray(proba)
        if len(y) != len(p):
            raise ValueError(f"{self.name}: {len(y)} true rows but {len(p)} predicted rows")
        if p.dtype.kind == "f" and not np.isfinite(p).all():
            bad = int((~np.isfinite(p)).reshape(len(p), -1).any(axis=1).sum())
            raise NonFinitePredictions(
                f"{self.name}: {bad} of {len(p)} predicted rows hold NaN or inf; refusing to "
                "score them.")
        return float(self.func(y, p, space if space is not None else LabelSpace()))

    def is_better(self, candidate: float, incumbent: float) -> bool:
        """True when ``candidate`` beats ``incumbent`` under this metric's direction."""
        if np.isnan(incumbent):
            return not np.isnan(candidate)
        return candidate > incumbent if self.greater_is_better else candidate < incumbent


def _multilabel(y: np.ndarray) -> bool:
    return y.ndim == 2


def _values(p: np.ndarray) -> bool:
    """One prediction column: a regression or ordinal value rather than probabilities."""
    return p.ndim == 2 and p.shape[1] == 1


def _predicted(y: np.ndarray, p: np.ndarray, space: LabelSpace) -> np.ndarray:
    """Hard predictions: the argmax class (ties: the lowest index), the multilabel decision
    matrix under the competition's rule, or the nearest competition grade of a value."""
    if _values(p):
        return space.to_grades(p[:, 0])
    return decide_multilabel(p, space.multilabel_rule) if _multilabel(y) else p.argmax(axis=1)


def _accuracy(y: np.ndarray, p: np.ndarray, space: LabelSpace) -> float:
    """Share of rows predicted exactly (Digit Recognizer, Cassava Leaf Disease
    Classification): argmax class, the nearest grade (ordinal), or the whole label set
    (multilabel: exact-set match). Reference: sklearn ``accuracy_score``."""
    predicted = _predicted(y, p, space)
    if _multilabel(y):
        return float((predicted == y).all(axis=1).mean())
    return float((predicted == np.asarray(y).astype(predicted.dtype)).mean())


def _logloss(y: np.ndarray, p: np.ndarray, space: LabelSpace) -> float:
    """Kaggle's multi-class log loss (Dogs vs Cats, Statoil Iceberg, Plant Seedlings): each
    row divided by its sum, probabilities clipped to [1e-15, 1 - 1e-15], the mean of
    -log p(true class). Multilabel: mean binary cross-entropy over every (row, class) cell
    (Human Protein Atlas style). Reference: the published definition; sklearn ``log_loss``
    with all labels on normalised rows."""
    if _multilabel(y):
        q = np.clip(p, LOGLOSS_EPS, 1.0 - LOGLOSS_EPS)
        return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))
    sums = p.sum(axis=1, keepdims=True)
    q = np.clip(p / np.where(sums > 0, sums, 1.0), LOGLOSS_EPS, 1.0 - LOGLOSS_EPS)
    return float(-np.mean(np.log(q[np.arange(len(y)), np.asarray(y, dtype=np.int64)])))


def _auc(y: np.ndarray, p: np.ndarray, space: LabelSpace) -> float:
    """ROC AUC (SIIM-ISIC Melanoma, RSNA Intracranial per class, Jigsaw): binary on the
    positive class's probability; multiclass one-vs-rest and multilabel per class, averaged
    over the classes with both outcomes among the rows. NaN when no class has both outcomes
    (a fold holding one class): AUC is undefined there, and CV averages the folds where it
    is defined. Reference: sklearn ``roc_auc_score`` per class."""
    from sklearn import metrics as skm  # late: the config check imports this module

    if not _multilabel(y) and p.shape[1] == 2:
        return float(skm.roc_auc_score(y, p[:, 1])) if len(np.unique(y)) == 2 else np.nan
    truth = y if _multilabel(y) else (np.asarray(y)[:, None] == np.arange(p.shape[1]))
    scored = [c for c in range(p.shape[1]) if 0 < truth[:, c].sum() < len(truth)]
    if not scored:
        return np.nan
    return float(np.mean([skm.roc_auc_score(truth[:, c], p[:, c]) for c in scored]))


def auc_defined(y: np.ndarray, n_columns: int) -> bool:
    """Whether AUC is defined on these truth rows: binary needs both classes, multiclass and
    multilabel at least one class with both outcomes."""
    y = np.asarray(y)
    if y.ndim == 2:
        return bool(((y.sum(axis=0) > 0) & (y.sum(axis=0) < len(y))).any())
    counts = np.bincount(y.astype(np.int64), minlength=n_columns)
    return bool(((counts > 0) & (counts < len(y))).any()) if n_columns > 2 else \
        bool((counts > 0).sum() == 2)


def _fbeta(beta: float, average: str) -> Callable[[np.ndarray, np.ndarray, LabelSpace], float]:
    def fbeta(y: np.ndarray, p: np.ndarray, space: LabelSpace) -> float:
        from sklearn import metrics as skm  # late: the config check imports this module

        labels = None if _multilabel(y) else np.arange(p.shape[1])
        return float(skm.fbeta_score(y, _predicted(y, p, space), beta=beta, average=average,
                                     labels=labels, zero_division=0.0))

    fbeta.__doc__ = (
        f"F{beta:g} score, {average} average over every class of the competition (a class "
        "nobody predicts or holds counts as 0), on argmax classes or multilabel decisions. "
        + {"macro": "Macro F1: iMet Collection, Human Protein Atlas, Bengali.AI.",
           "micro": "Micro F1: Herbarium, iWildCam-style per-label counts.",
           "samples": "Per-image F: Planet Amazon (F2), iMet (F2)."}[average]
        + " Reference: sklearn ``fbeta_score`` with all labels, zero_division=0.")
    return fbeta


def quadratic_weighted_kappa(y_index: np.ndarray, pred_index: np.ndarray,
                             n_grades: int) -> float:
    """Quadratic weighted kappa over grade indices ``0..n_grades-1`` (Kaggle's definition
    with ``min_rating`` and ``max_rating``: every grade of the range weighs by its distance,
    present or not). 1 - sum(W O) / sum(W E) with W_ij = (i - j)^2 (the normalisation
    by (n-1)^2 cancels), O the confusion counts and E the outer product of the histograms
    over n. NaN when the expected disagreement is 0 (truth and predictions all one grade),
    as Kaggle's and sklearn's are. Cut-point search calls this directly: one bincount."""
    y_index = np.asarray(y_index, dtype=np.int64)
    pred_index = np.asarray(pred_index, dtype=np.int64)
    n = len(y_index)
    if n == 0:
        return np.nan
    observed = np.bincount(y_index * n_grades + pred_index,
                           minlength=n_grades * n_grades).reshape(n_grades, n_grades)
    expected = np.outer(np.bincount(y_index, minlength=n_grades),
                        np.bincount(pred_index, minlength=n_grades)) / n
    i = np.arange(n_grades)
    weights = (i[:, None] - i[None, :]) ** 2
    disagreement = float((weights * expected).sum())
    if disagreement == 0:
        return np.nan
    return 1.0 - float((weights * observed).sum()) / disagreement


def _qwk(y: np.ndarray, p: np.ndarray, space: LabelSpace) -> float:
    """Quadratic weighted kappa (Diabetic Retinopathy, APTOS 2019, PANDA, Petfinder): value
    predictions rounded and clipped to the competition's grade range, or the argmax class
    index of class probabilities (classes in their order). Reference: Kaggle's published
    QWK with min/max rating; sklearn ``cohen_kappa_score(weights="quadratic")`` with every
    grade as ``labels``."""
    if _values(p):
        truth = space.grade_index(y, "true grades")
        return quadratic_weighted_kappa(truth, space.grade_index(p[:, 0]), len(space.grades))
    return quadratic_weighted_kappa(np.asarray(y, dtype=np.int64), p.argmax(axis=1),
                                    p.shape[1])


def _rmse(y: np.ndarray, p: np.ndarray, space: LabelSpace) -> float:
    """Root mean squared error of the values (Petfinder Pawpularity, bone age). Reference:
    sklearn ``root_mean_squared_error``."""
    return float(np.sqrt(np.mean((p[:, 0] - y) ** 2)))


def _mae(y: np.ndarray, p: np.ndarray, space: LabelSpace) -> float:
    """Mean absolute error of the values (RSNA bone age). Reference: sklearn
    ``mean_absolute_error``."""
    return float(np.mean(np.abs(p[:, 0] - y)))


_CLASSES = ("binary", "multiclass", "multilabel")

METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("accuracy", _accuracy, True, (*_CLASSES, "ordinal")),
        Metric("logloss", _logloss, False, _CLASSES, probabilistic=True,
               scores_decisions=False),
        Metric("auc", _auc, True, _CLASSES, probabilistic=True, scores_decisions=False),
        Metric("f1_macro", _fbeta(1.0, "macro"), True, _CLASSES),
        Metric("f1_micro", _fbeta(1.0, "micro"), True, _CLASSES),
        Metric("f1_samples", _fbeta(1.0, "samples"), True, ("multilabel",)),
        Metric("f2_macro", _fbeta(2.0, "macro"), True, _CLASSES),
        Metric("f2_micro", _fbeta(2.0, "micro"), True, _CLASSES),
        Metric("f2_samples", _fbeta(2.0, "samples"), True, ("multilabel",)),
        Metric("qwk", _qwk, True, ("binary", "multiclass", "ordinal")),
        Metric("rmse", _rmse, False, ("regression", "ordinal"), scores_decisions=False),
        Metric("mae", _mae, False, ("regression", "ordinal"), scores_decisions=False),
    )
}
"""The label metrics every task of labels and values shares (blends, stackers and label
post-processing score with them); a task plug-in registers its own (:func:`register_metric`:
the segment plug-in's Dice and instance mAP)."""


def register_metric(metric: Metric) -> Metric:
    """Add a task plug-in's metric to the registry (the plug-in's package does it on import,
    so every job that runs the plug-in's code can look it up by name); the name must be new."""
    known = METRICS.get(metric.name)
    if known is not None and known.func.__module__ != metric.func.__module__:
        raise ValueError(f"metric {metric.name!r} is already registered by "
                         f"{known.func.__module__}")
    METRICS[metric.name] = metric
    return metric


def check_metric_for_task(name: str, task: str) -> None:
    """Fail early when the competition metric cannot score the task's predictions."""
    if task not in get_metric(name).tasks:
        fitting = sorted(m for m, metric in METRICS.items() if task in metric.tasks)
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
