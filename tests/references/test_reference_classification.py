"""Podium's classification, ordinal and regression metrics against independent references.

Every registry metric that scores class probabilities or a value column is held, to 1e-9, to
scikit-learn and, where a Kaggle competition publishes its own definition, to that definition
re-derived here from its text (never through podium's helpers): Ben Hamner's quadratic
weighted kappa with ``min_rating``/``max_rating``, Kaggle's multi-class log loss (rows divided
by their sum, clipped to [1e-15, 1 - 1e-15]), ROC AUC as the Mann-Whitney statistic, and
F-beta from per-class or per-row counts. Each metric runs on ``N_DRAWS`` seeded draws shared
out over the tasks it scores (binary, multiclass, multilabel, ordinal, regression), draws that
deliberately hold absent classes and grades, probability ties, one class only, constant
predictions, multilabel rows with no label and values beyond the grade range; undefined
scores (AUC with one class, QWK with one grade everywhere) must be NaN in podium exactly when
they are in the reference.

``REFERENCES`` maps each metric name to its references; test_reference_registry.py holds its
keys, together with the segmentation module's, to podium's registry.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from functools import cache

import numpy as np
import pandas as pd
import pytest
from scipy.stats import rankdata
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning

from podium.metrics import METRICS, LabelSpace, auc_defined, decide_multilabel, get_metric
from podium.task import TaskSpec

N_DRAWS = 1000
"""Seeded random draws per metric (and per task, for the checks on every task's draws)."""

TOL = 1e-9

TASKS = ("binary", "multiclass", "multilabel", "ordinal", "regression")
SEEDS = {task: 20_180_000 + i for i, task in enumerate(TASKS)}
RULES = ("at_least_one", "independent")


# --------------------------------------------------------------------------------------------
# Draws


def _spec(task: str, classes: tuple[str, ...], rule: str = "at_least_one") -> TaskSpec:
    return TaskSpec(task=task, target="label", classes=classes, metric="accuracy",
                    id_column="id", multilabel_rule=rule)


def _class_probabilities(rng: np.random.Generator, i: int, n: int, k: int) -> np.ndarray:
    """Softmax-like rows with the awkward cases on a fixed schedule: ties (few levels),
    one-hot rows (zeros and ones: both ends of the log-loss clip), constant predictions, a
    class nobody predicts, and rows that do not sum to one."""
    if i % 3 == 0:  # ties within rows (argmax) and across rows (AUC ranks)
        p = rng.integers(1, 4, size=(n, k)).astype(np.float64)
    elif i % 8 == 1:
        p = np.eye(k)[rng.integers(0, k, size=n)]
    else:
        p = rng.dirichlet(np.full(k, rng.choice([0.3, 1.0, 3.0])), size=n)
    if i % 7 == 2:  # constant predictions
        p = np.tile(p[:1], (n, 1))
    if i % 5 == 4 and i % 8 != 1:  # a class no row predicts (and a zero probability)
        p[:, rng.integers(0, k)] = 0.0
        p[p.sum(axis=1) == 0, 0] = 1.0
    p = p / p.sum(axis=1, keepdims=True)
    if i % 6 == 5:  # rows not summing to one: Kaggle divides each by its sum
        p = p * rng.uniform(0.2, 3.0, size=(n, 1))
    return p


def _class_truth(rng: np.random.Generator, i: int, n: int, k: int) -> np.ndarray:
    if i % 10 == 0:  # one class only
        return np.full(n, rng.integers(0, k), dtype=np.int64)
    if i % 4 == 1:  # some classes nobody holds
        held = rng.choice(k, size=rng.integers(1, k + 1), replace=False)
        return rng.choice(held, size=n).astype(np.int64)
    return rng.integers(0, k, size=n).astype(np.int64)


def _multilabel(rng: np.random.Generator, i: int, n: int, k: int
                ) -> tuple[np.ndarray, np.ndarray]:
    y = (rng.random((n, k)) < rng.choice([0.1, 0.3, 0.6])).astype(np.int64)
    if i % 3 == 0:  # rows with no label in truth
        y[rng.random(n) < 0.5] = 0
    if i % 4 == 1:  # a class nobody holds, and one everybody holds
        y[:, rng.integers(0, k)] = 0
        y[:, rng.integers(0, k)] = 1
    if i % 10 == 0:  # one outcome per class: AUC undefined
        y = np.tile(y[:1], (n, 1))
    if i % 3 == 1:  # ties, and probabilities exactly at the 0.5 cut
        p = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], size=(n, k))
    elif i % 3 == 2:  # rows clearing no class: at_least_one takes the argmax
        p = rng.uniform(0.0, 0.6, size=(n, k))
    else:
        p = rng.random((n, k))
    if i % 7 == 2:
        p = np.tile(p[:1], (n, 1))
    if i % 5 == 4:
        p[:, rng.integers(0, k)] = 0.0
    return y, p


def _ordinal(rng: np.random.Generator, i: int, n: int
             ) -> tuple[np.ndarray, np.ndarray, LabelSpace]:
    """Integer grades over a range some of whose grades nobody holds (in train, in the fold,
    or in the predictions); values beyond the range (clipped), half grades, constants."""
    lo = int(rng.integers(-2, 3))
    hi = lo + int(rng.integers(1, 7))
    inner = [g for g in range(lo + 1, hi) if rng.random() < 0.6]
    classes = tuple(str(g) for g in [lo, *inner, hi])  # train's grades: the range's ends
    space = _spec("ordinal", classes).label_space
    if i % 10 == 0:
        y = np.full(n, rng.integers(lo, hi + 1))
    elif i % 4 == 1:
        held = rng.choice(hi - lo + 1, size=rng.integers(1, hi - lo + 1), replace=False)
        y = lo + rng.choice(held, size=n)
    else:
        y = rng.integers(lo, hi + 1, size=n)
    if i % 20 == 0:  # every truth and prediction one grade: QWK undefined
        v = y + rng.uniform(-0.49, 0.49, size=n)
    elif i % 7 == 2:
        v = np.full(n, rng.uniform(lo - 2, hi + 2))
    elif i % 3 == 0:
        v = rng.integers(2 * lo - 4, 2 * hi + 5, size=n) / 2.0  # half grades, beyond range
    elif i % 3 == 1:
        v = rng.uniform(lo - 2.5, hi + 2.5, size=n)
    else:
        v = y + rng.normal(0, rng.choice([0.3, 1.0, 2.0]), size=n)
    return y.astype(np.float64), v[:, None], space


@cache
def draws(task: str) -> tuple[tuple[np.ndarray, np.ndarray, LabelSpace], ...]:
    """``N_DRAWS`` seeded (truth, predictions, label space) triples of one task."""
    rng = np.random.default_rng(SEEDS[task])
    out = []
    for i in range(N_DRAWS):
        n = int(rng.integers(1, 26))
        if task in ("binary", "multiclass"):
            k = 2 if task == "binary" else int(rng.integers(3, 7))
            classes = tuple(f"c{c}" for c in range(k))
            out.append((_class_truth(rng, i, n, k), _class_probabilities(rng, i, n, k),
                        _spec(task, classes).label_space))
        elif task == "multilabel":
            k = int(rng.integers(2, 7))
            y, p = _multilabel(rng, i, n, k)
            rule = RULES[i % 2]
            out.append((y, p, _spec(task, tuple(map(str, range(k))), rule).label_space))
        elif task == "ordinal":
            out.append(_ordinal(rng, i, n))
        else:
            y = rng.normal(0, rng.choice([1.0, 50.0]), size=n)
            v = np.full(n, rng.normal()) if i % 7 == 2 else y + rng.normal(0, 2.0, size=n)
            out.append((y, v[:, None], LabelSpace()))
    return tuple(out)


# --------------------------------------------------------------------------------------------
# Decisions, written from the definitions


def argmax_class(p: np.ndarray) -> np.ndarray:
    """The predicted class: the most likely, the first of tied ones (as the submission)."""
    return np.array([int(np.flatnonzero(row == row.max())[0]) for row in p], dtype=np.int64)


def label_sets(p: np.ndarray, rule: str) -> np.ndarray:
    """Every class with p >= 0.5; under ``at_least_one`` a row clearing none gets its most
    likely class (the first of tied ones); under ``independent`` it stays empty."""
    decided = np.zeros(p.shape, dtype=np.int64)
    for r, row in enumerate(p):
        chosen = [c for c, value in enumerate(row) if value >= 0.5]
        if not chosen and rule == "at_least_one":
            chosen = [int(np.flatnonzero(row == row.max())[0])]
        decided[r, chosen] = 1
    return decided


def grades_of(v: np.ndarray, space: LabelSpace) -> np.ndarray:
    """Values as the nearest whole grade (halves to even, as numpy rounds), clipped to the
    competition's lowest and highest grade."""
    lo, hi = space.grades[0], space.grades[-1]
    return np.array([min(max(int(round(float(x))), lo), hi) for x in v], dtype=np.int64)


def decisions(y: np.ndarray, p: np.ndarray, space: LabelSpace) -> tuple[np.ndarray, np.ndarray]:
    """(truth, hard predictions) as sklearn takes them."""
    if p.shape[1] == 1:
        return y.astype(np.int64), grades_of(p[:, 0], space)
    if y.ndim == 2:
        return y, label_sets(p, space.multilabel_rule)
    return y, argmax_class(p)


def indicators(y: np.ndarray, p: np.ndarray, space: LabelSpace) -> tuple[np.ndarray, np.ndarray]:
    truth, predicted = decisions(y, p, space)
    if truth.ndim == 2:
        return truth.astype(bool), predicted.astype(bool)
    k = p.shape[1]
    return np.eye(k, dtype=bool)[truth], np.eye(k, dtype=bool)[predicted]


# --------------------------------------------------------------------------------------------
# References

Reference = Callable[[np.ndarray, np.ndarray, LabelSpace], float]


def sk_accuracy(y, p, space):
    return skm.accuracy_score(*decisions(y, p, space))


def _normalised(p: np.ndarray) -> np.ndarray:
    return (p + 1e-3) / (p + 1e-3).sum(axis=1, keepdims=True)


def _clipped_cells(p: np.ndarray) -> np.ndarray:
    return np.clip(p, 1e-3, 1 - 1e-3)


def kaggle_logloss(y, p, space):
    """Kaggle's multi-class log loss: each row divided by its sum, each probability replaced
    by max(min(p, 1 - 1e-15), 1e-15), the mean of -log p(true class). Multilabel: the mean
    binary cross-entropy of every (row, class) cell, clipped alike."""
    eps = 1e-15
    if y.ndim == 2:
        total = 0.0
        for truth_row, row in zip(y, p, strict=True):
            for t, q in zip(truth_row, row, strict=True):
                q = max(min(float(q), 1 - eps), eps)
                total -= math.log(q) if t else math.log(1 - q)
        return total / y.size
    total = 0.0
    for c, row in zip(y, p, strict=True):
        q = max(min(float(row[c]) / float(sum(row)), 1 - eps), eps)
        total -= math.log(q)
    return total / len(y)


def sk_logloss(y, p, space):
    """sklearn's log loss with every class as ``labels``, on rows that sum to one and stay
    away from both clips (``prepare_by_truth``); multilabel: the mean over classes of each
    class's binary log loss (every class has the same rows)."""
    if y.ndim == 2:
        return float(np.mean([skm.log_loss(y[:, c], p[:, c], labels=[0, 1])
                              for c in range(y.shape[1])]))
    return skm.log_loss(y, p, labels=np.arange(p.shape[1]))


sk_logloss.prepare_by_truth = lambda y, p: _clipped_cells(p) if y.ndim == 2 else _normalised(p)


def _auc_columns(y: np.ndarray, p: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(0/1 truth, score) of every class AUC averages: binary the positive class's
    probability; multiclass one-vs-rest and multilabel per class, over the classes with both
    outcomes among the rows."""
    if y.ndim == 1 and p.shape[1] == 2:
        return [(y, p[:, 1])] if len(set(y.tolist())) == 2 else []
    truth = y if y.ndim == 2 else (y[:, None] == np.arange(p.shape[1])).astype(np.int64)
    return [(truth[:, c], p[:, c]) for c in range(p.shape[1])
            if 0 < truth[:, c].sum() < len(truth)]


def sk_auc(y, p, space):
    columns = _auc_columns(y, p)
    if not columns:
        return math.nan
    return float(np.mean([skm.roc_auc_score(t, s) for t, s in columns]))


def mann_whitney_auc(y, p, space):
    """AUC as P(score of a positive > score of a negative) + P(tie) / 2, from average ranks."""
    columns = _auc_columns(y, p)
    if not columns:
        return math.nan
    values = []
    for t, s in columns:
        ranks = rankdata(s)
        n_pos = int(t.sum())
        n_neg = len(t) - n_pos
        values.append((ranks[t == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    return float(np.mean(values))


def sk_fbeta(beta: float, average: str) -> Reference:
    def reference(y, p, space):
        truth, predicted = decisions(y, p, space)
        labels = None if y.ndim == 2 else np.arange(p.shape[1])
        return skm.fbeta_score(truth, predicted, beta=beta, average=average, labels=labels,
                               zero_division=0)
    return reference


def counted_fbeta(beta: float, average: str) -> Reference:
    """F-beta = (1 + b^2) TP / ((1 + b^2) TP + b^2 FN + FP), 0 where nothing is held or
    predicted; per class then averaged (macro, every class of the competition), from the
    summed counts (micro), or per row then averaged (samples)."""
    def reference(y, p, space):
        truth, predicted = indicators(y, p, space)
        axis = {"macro": 0, "micro": None, "samples": 1}[average]
        tp = (truth & predicted).sum(axis=axis)
        fp = (~truth & predicted).sum(axis=axis)
        fn = (truth & ~predicted).sum(axis=axis)
        b2 = beta * beta
        den = (1 + b2) * tp + b2 * fn + fp
        f = np.where(den > 0, (1 + b2) * tp / np.maximum(den, 1), 0.0)
        return float(np.mean(f))
    return reference


def kaggle_qwk(rater_a, rater_b, min_rating, max_rating):
    """Ben Hamner's quadratic_weighted_kappa (Kaggle's metrics package): the confusion matrix
    and both histograms over every rating from min_rating to max_rating, weights
    (i - j)^2 / (n - 1)^2. Undefined (NaN) when the expected disagreement is 0."""
    num_ratings = int(max_rating - min_rating + 1)
    conf_mat = [[0] * num_ratings for _ in range(num_ratings)]
    hist_a, hist_b = [0] * num_ratings, [0] * num_ratings
    for a, b in zip(rater_a, rater_b, strict=True):
        conf_mat[a - min_rating][b - min_rating] += 1
        hist_a[a - min_rating] += 1
        hist_b[b - min_rating] += 1
    num_scored_items = float(len(rater_a))
    numerator = denominator = 0.0
    for i in range(num_ratings):
        for j in range(num_ratings):
            expected_count = hist_a[i] * hist_b[j] / num_scored_items
            d = (i - j) ** 2 / (num_ratings - 1) ** 2
            numerator += d * conf_mat[i][j] / num_scored_items
            denominator += d * expected_count / num_scored_items
    return math.nan if denominator == 0 else 1.0 - numerator / denominator


def _rating_range(p: np.ndarray, space: LabelSpace) -> tuple[int, int]:
    return (space.grades[0], space.grades[-1]) if p.shape[1] == 1 else (0, p.shape[1] - 1)


def hamner_qwk(y, p, space):
    truth, predicted = decisions(y, p, space)
    return kaggle_qwk(truth.tolist(), predicted.tolist(), *_rating_range(p, space))


def sk_qwk(y, p, space):
    lo, hi = _rating_range(p, space)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return skm.cohen_kappa_score(*decisions(y, p, space), weights="quadratic",
                                     labels=np.arange(lo, hi + 1))


def sk_rmse(y, p, space):
    return skm.root_mean_squared_error(y, p[:, 0])


def sk_mae(y, p, space):
    return skm.mean_absolute_error(y, p[:, 0])


REFERENCES: dict[str, tuple[Reference, ...]] = {
    "accuracy": (sk_accuracy,),
    "logloss": (kaggle_logloss, sk_logloss),
    "auc": (sk_auc, mann_whitney_auc),
    **{f"f{beta:g}_{average}": (sk_fbeta(beta, average), counted_fbeta(beta, average))
       for beta in (1.0, 2.0) for average in ("macro", "micro", "samples")},
    "qwk": (hamner_qwk, sk_qwk),
    "rmse": (sk_rmse,),
    "mae": (sk_mae,),
}
"""Each metric's independent references; every one must agree with podium to ``TOL``."""


def prepared(reference: Reference, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """The inputs a reference is defined on (podium is scored on the same)."""
    prepare = getattr(reference, "prepare_by_truth", None)
    return p if prepare is None else prepare(y, p)


def agrees(got: float, want: float) -> bool:
    """NaN exactly where the reference is NaN, else within ``TOL``."""
    if math.isnan(want) or math.isnan(got):
        return math.isnan(want) and math.isnan(got)
    return abs(got - want) <= TOL


# --------------------------------------------------------------------------------------------
# Random draws


def draws_for(name: str, task: str) -> tuple[tuple[np.ndarray, np.ndarray, LabelSpace], ...]:
    """A metric's ``N_DRAWS`` draws, shared out over the tasks it scores (the first of each
    task's draws: every awkward case recurs within a few dozen draws)."""
    tasks = METRICS[name].tasks
    return draws(task)[:-(-N_DRAWS // len(tasks))]


CASES = [(name, task) for name in REFERENCES for task in METRICS[name].tasks]


@pytest.mark.parametrize(("name", "task"), CASES, ids=[f"{n}-{t}" for n, t in CASES])
def test_metric_agrees_with_its_references_on_random_draws(name: str, task: str) -> None:
    metric = get_metric(name)
    failures, undefined = [], 0
    for index, (y, p, space) in enumerate(draws_for(name, task)):
        scored: dict[int, float] = {}  # podium once per distinct input
        for reference in REFERENCES[name]:
            q = prepared(reference, y, p)
            if id(q) not in scored:
                scored[id(q)] = metric(y, q, space)
            got, want = scored[id(q)], float(reference(y, q, space))
            undefined += math.isnan(want)
            if not agrees(got, want):
                failures.append(f"draw {index} ({reference.__qualname__}): podium {got!r}, "
                                f"reference {want!r}\n  y={y.tolist()}\n  p={q.tolist()}\n"
                                f"  space={space}")
    assert not failures, f"{len(failures)} disagreements; first:\n" + "\n".join(failures[:3])
    if name == "auc" or (name == "qwk" and task == "ordinal"):
        assert undefined > 0, "the draws should hold cases where the metric is undefined"
        assert undefined < len(REFERENCES[name]) * len(draws_for(name, task)) / 2


def test_every_metric_gets_its_draws() -> None:
    for name in REFERENCES:
        assert sum(len(draws_for(name, task)) for task in METRICS[name].tasks) >= N_DRAWS


@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
def test_auc_is_nan_exactly_where_undefined(task: str) -> None:
    """NaN where no class has both outcomes (the references above hold the defined draws to
    a number), and auc_defined, which CV averages folds by, says so."""
    auc, undefined = get_metric("auc"), 0
    for y, p, space in draws(task):
        has_both = bool(_auc_columns(y, p))
        assert auc_defined(y, p.shape[1]) == has_both, (y.tolist(), p.shape)
        if not has_both:
            assert np.isnan(auc(y, p, space)), (y.tolist(), p.tolist())
            undefined += 1
    assert 50 < undefined < N_DRAWS / 2


def test_draws_hold_the_awkward_cases() -> None:
    """The draws the references run on really hold what the module docstring says."""
    def count(task: str, holds: Callable[[np.ndarray, np.ndarray, LabelSpace], bool]) -> int:
        return sum(bool(holds(y, p, s)) for y, p, s in draws(task))

    for task in ("binary", "multiclass"):
        assert count(task, lambda y, p, s: len(set(y.tolist())) == 1) >= 100
        assert count(task, lambda y, p, s: len(set(y.tolist())) < p.shape[1]) >= 200
        assert count(task, lambda y, p, s: len(set(argmax_class(p).tolist())) < p.shape[1]) >= 200
        assert count(task, lambda y, p, s: (p == p.max(axis=1, keepdims=True)).sum(1).max() > 1
                     ) >= 100  # argmax ties
        assert count(task, lambda y, p, s: len(p) > 1 and (p == p[:1]).all()) >= 100
        assert count(task, lambda y, p, s: not np.allclose(p.sum(axis=1), 1)) >= 100
        assert count(task, lambda y, p, s: (p == 0).any()) >= 100
    ml = "multilabel"
    assert count(ml, lambda y, p, s: (y.sum(axis=1) == 0).any()) >= 200
    assert count(ml, lambda y, p, s: (p == 0.5).any()) >= 100
    assert count(ml, lambda y, p, s: ((p < 0.5).all(axis=1)).any()
                 and s.multilabel_rule == "at_least_one") >= 100
    assert count(ml, lambda y, p, s: ((p < 0.5).all(axis=1)).any()
                 and s.multilabel_rule == "independent") >= 100
    assert count(ml, lambda y, p, s: (y.sum(axis=0) == 0).any()) >= 200
    assert count("ordinal", lambda y, p, s: len(set(y.tolist())) < len(s.grades)) >= 500
    assert count("ordinal", lambda y, p, s: len(set(grades_of(p[:, 0], s).tolist()))
                 < len(s.grades)) >= 500
    assert count("ordinal", lambda y, p, s: ((p < s.grades[0] - 0.5) | (p > s.grades[-1] + 0.5)
                                            ).any()) >= 200  # clipped to the range
    assert count("ordinal", lambda y, p, s: (np.abs(p - np.rint(p)) == 0.5).any()) >= 100


def test_cv_scores_the_decisions_the_submission_writes() -> None:
    """The grades and label sets the references score are those TaskSpec.decode writes
    into submission.csv (ordinal halves round to even, as numpy rounds)."""
    for _y, p, space in draws("ordinal"):
        spec = _spec("ordinal", tuple(map(str, space.grades)))
        assert [int(g) for g in spec.decode(p)] == grades_of(p[:, 0], space).tolist()
    for _y, p, space in draws("multilabel")[:300]:
        spec = _spec("multilabel", tuple(map(str, range(p.shape[1]))), space.multilabel_rule)
        written = spec.encode(pd.Series(spec.decode(p)))
        assert (written == label_sets(p, space.multilabel_rule)).all()


def test_ordinal_grade_range_is_the_competitions_not_the_folds() -> None:
    """TaskSpec.label_space spans every whole grade from train's lowest to highest."""
    space = _spec("ordinal", ("1", "2", "5")).label_space
    assert space.grades == (1, 2, 3, 4, 5)
    assert _spec("multilabel", ("a", "b"), "independent").label_space == LabelSpace(
        None, "independent")


# --------------------------------------------------------------------------------------------
# What each metric scores: probabilities, or the decisions a submission carries


PROBABILISTIC = {"auc", "logloss"}


def test_only_auc_and_logloss_score_probabilities_themselves() -> None:
    assert {name for name, m in METRICS.items() if m.probabilistic} == PROBABILISTIC


@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel", "ordinal"])
def test_label_metrics_see_only_the_decisions(task: str) -> None:
    """A label metric scores the probabilities exactly as it scores the decisions a
    submission would carry (one-hot classes, the decided label set, the grade)."""
    names = [n for n, m in METRICS.items() if task in m.tasks and n in REFERENCES
             and not m.probabilistic and n not in ("rmse", "mae")]
    assert names
    for y, p, space in draws(task)[:25]:
        _, predicted = decisions(y, p, space)
        if task == "ordinal":
            hard = predicted.astype(np.float64)[:, None]
        elif task == "multilabel":
            hard = predicted.astype(np.float64)
        else:
            hard = np.eye(p.shape[1])[predicted]
        for name in names:
            assert agrees(get_metric(name)(y, hard, space), get_metric(name)(y, p, space))


def test_probabilistic_metrics_see_more_than_the_decisions() -> None:
    y = np.array([0, 1, 1, 0])
    p = np.array([[0.6, 0.4], [0.7, 0.3], [0.2, 0.8], [0.9, 0.1]])
    q = np.array([[0.6, 0.4], [0.55, 0.45], [0.2, 0.8], [0.9, 0.1]])  # same argmax
    assert (argmax_class(p) == argmax_class(q)).all()
    for name in PROBABILISTIC:
        assert get_metric(name)(y, p) != get_metric(name)(y, q), name
    for name in ("accuracy", "f1_macro", "qwk"):
        assert get_metric(name)(y, p) == get_metric(name)(y, q), name


# --------------------------------------------------------------------------------------------
# The hand cases


def test_qwk_over_the_full_grade_range() -> None:
    """y = [0, 1, 3, 3], predicted [0, 3, 3, 1] on grades 0-3: Kaggle's QWK (and sklearn's
    with labels 0..3) is 11/27 = 0.407. Ranking grades among those present (0, 1, 3 as
    0, 1, 2) gives another number, which podium must not."""
    y, v = np.array([0.0, 1.0, 3.0, 3.0]), np.array([[0.0], [3.0], [3.0], [1.0]])
    space = _spec("ordinal", ("0", "1", "2", "3")).label_space
    got = get_metric("qwk")(y, v, space)
    assert got == pytest.approx(11 / 27, abs=TOL) and round(got, 3) == 0.407
    assert agrees(got, kaggle_qwk([0, 1, 3, 3], [0, 3, 3, 1], 0, 3))
    assert agrees(got, skm.cohen_kappa_score([0, 1, 3, 3], [0, 3, 3, 1], weights="quadratic",
                                             labels=[0, 1, 2, 3]))
    by_rank = skm.cohen_kappa_score([0, 1, 3, 3], [0, 3, 3, 1], weights="quadratic")
    assert abs(by_rank - got) > 0.01
    # the same grades as class probabilities: QWK of the argmax over the four classes
    assert agrees(get_metric("qwk")(y.astype(int), np.eye(4)[[0, 3, 3, 1]]), got)


def test_ordinal_predictions_clip_to_the_competitions_range_not_the_folds() -> None:
    """y = [0, 1, 2, 2], predicted [0, 1, 3, 4] on grades 0-4 (the fold lacks grades 3 and
    4): accuracy 0.5 and QWK 2/3 = 0.667 as sklearn scores it with labels 0..4. Clipping the
    predictions to the fold's range 0-2 would have scored both 1.0."""
    y, v = np.array([0.0, 1.0, 2.0, 2.0]), np.array([[0.0], [1.0], [3.0], [4.0]])
    space = _spec("ordinal", ("0", "1", "2", "3", "4")).label_space
    assert get_metric("accuracy")(y, v, space) == pytest.approx(0.5, abs=TOL)
    assert agrees(get_metric("accuracy")(y, v, space),
                  skm.accuracy_score([0, 1, 2, 2], [0, 1, 3, 4]))
    qwk = get_metric("qwk")(y, v, space)
    assert agrees(qwk, skm.cohen_kappa_score([0, 1, 2, 2], [0, 1, 3, 4], weights="quadratic",
                                             labels=[0, 1, 2, 3, 4]))
    assert agrees(qwk, kaggle_qwk([0, 1, 2, 2], [0, 1, 3, 4], 0, 4))
    assert qwk == pytest.approx(2 / 3, abs=TOL) and round(qwk, 3) == 0.667
    fold_clipped = skm.cohen_kappa_score([0, 1, 2, 2], [0, 1, 2, 2], weights="quadratic")
    assert fold_clipped == 1.0 and qwk < fold_clipped


@pytest.mark.parametrize(("rule", "sets", "accuracy"), [
    # row 3 clears no class: at_least_one gives it its most likely class (the first of the
    # tied 0.3s), independent leaves it empty; row 4 is empty in truth too.
    ("at_least_one", [[0, 1, 0], [1, 1, 0], [1, 0, 0], [1, 0, 0]], 3 / 4),
    ("independent", [[0, 0, 0], [1, 1, 0], [0, 0, 0], [0, 0, 0]], 2 / 4),
])
def test_multilabel_scores_the_label_sets_the_competition_decides(rule, sets, accuracy):
    y = np.array([[0, 1, 0], [1, 1, 0], [1, 0, 0], [0, 0, 0]])
    p = np.array([[0.2, 0.4, 0.1], [0.6, 0.5, 0.1], [0.3, 0.3, 0.2], [0.1, 0.1, 0.1]])
    spec = _spec("multilabel", ("a", "b", "c"), rule)
    space = spec.label_space
    assert label_sets(p, rule).tolist() == sets
    assert decide_multilabel(p, rule).tolist() == sets
    # the submission writes these sets, and CV scores them
    assert spec.encode(pd.Series(spec.decode(p))).tolist() == sets
    assert get_metric("accuracy")(y, p, space) == pytest.approx(accuracy, abs=TOL)
    for name in ("accuracy", "f1_macro", "f1_micro", "f1_samples", "f2_macro", "f2_micro",
                 "f2_samples"):
        for reference in REFERENCES[name]:
            assert agrees(get_metric(name)(y, p, space), reference(y, p, space)), name
    d = np.array(sets)
    assert agrees(get_metric("f1_samples")(y, p, space),
                  skm.f1_score(y, d, average="samples", zero_division=0))
    assert agrees(get_metric("f2_macro")(y, p, space),
                  skm.fbeta_score(y, d, beta=2, average="macro", zero_division=0))
