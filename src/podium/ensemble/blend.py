"""Blends of level-1 model predictions, in scikit-learn estimator habits.

Every blend takes its parameters in the constructor, ``fit(probas, y)`` returns ``self`` and
``predict_proba(probas)`` returns one matrix shaped like each input. ``probas`` is a list of
per-model arrays ``(n_rows, n_classes)`` in a fixed model order: softmax rows for binary and
multiclass, independent sigmoids for multilabel, a single ``pred`` column for regression and
ordinal tasks. The task kind is read off the shapes at ``fit``: a 2-D ``y`` is multilabel, a
single prediction column is regression, anything else is single-label.

Blends that learn from labels (``weighted``, ``hill_climb``) must be scored on rows they were
not fitted on: :func:`blend_out_of_fold` fits one per fold, like the level-2 stackers.
Look a blend up by its config name with :func:`make_blend`.
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
from scipy.optimize import minimize
from scipy.stats import rankdata
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from podium.ensemble.crossfit import cross_fit
from podium.errors import PodiumInputError, did_you_mean
from podium.metrics import MULTILABEL_THRESHOLD, LabelSpace, Metric, get_metric

SINGLE, MULTILABEL, REGRESSION = "single", "multilabel", "regression"
_EPS = 1e-15


def _stack(probas: list[np.ndarray]) -> np.ndarray:
    """``(n_models, n_rows, n_columns)`` float64, refusing ragged or empty model lists."""
    arrays = [np.asarray(p, dtype=np.float64) for p in probas]
    if not arrays:
        raise ValueError("a blend needs at least one model's predictions")
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1 or arrays[0].ndim != 2:
        raise ValueError(f"every model must give one (n_rows, n_columns) array; got {shapes}")
    return np.stack(arrays)


def _infer_kind(stacked: np.ndarray, y: np.ndarray | None) -> str:
    """Single-label, multilabel or regression, from the truth's and predictions' shapes.

    Without ``y`` (only sensible for blends that learn nothing) rows that do not sum to 1 are
    taken for multilabel sigmoids."""
    if y is not None:
        y = np.asarray(y)
        if len(y) != stacked.shape[1]:
            raise ValueError(f"y has {len(y)} rows, the predictions {stacked.shape[1]}")
        if y.ndim == 2:
            if y.shape[1] != stacked.shape[2]:
                raise ValueError(f"multilabel y has {y.shape[1]} classes, the predictions "
                                 f"{stacked.shape[2]}")
            return MULTILABEL
    if stacked.shape[2] == 1:
        return REGRESSION
    if y is None and not np.allclose(stacked.sum(axis=2), 1.0, atol=1e-3):
        return MULTILABEL
    return SINGLE


def _mix(weights: np.ndarray, stacked: np.ndarray) -> np.ndarray:
    """Weighted arithmetic mean of the models' matrices."""
    return np.tensordot(weights, stacked, axes=1)


def _renormalise(matrix: np.ndarray) -> np.ndarray:
    """Rows summing to 1 (uniform where a row is all zero), so argmax and log loss work."""
    sums = matrix.sum(axis=1, keepdims=True)
    uniform = np.full_like(matrix, 1.0 / matrix.shape[1])
    return np.where(sums > 0, matrix / np.where(sums > 0, sums, 1.0), uniform)


def _not_for_regression(method: str, kind: str) -> None:
    if kind == REGRESSION:
        raise PodiumInputError(
            f"config key ensemble.blends.<name>.method: blend {method!r} needs class "
            "probabilities and cannot blend regression predictions; use mean, geomean, "
            "weighted or hill_climb."
        )


def _bad_param(method: str, param: str, message: str) -> PodiumInputError:
    return PodiumInputError(
        f"config key ensemble.blends.<name>.params.{param}: blend {method!r}: {message}"
    )


def _needs_metric(method: str, metric: str | None) -> Metric:
    if metric is None:
        raise _bad_param(method, "metric", "needs a metric to optimise (the competition's "
                         "metric is used when none is given)")
    return get_metric(metric)


def _is_count(value: Any, minimum: int) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= minimum


class Blend(BaseEstimator):
    """Common plumbing: input checks, the task kind, and a JSON description for cv.json."""

    method: ClassVar[str] = ""
    #: True when ``fit`` looks at ``y``: such a blend must be scored out of fold.
    learns_from_labels: ClassVar[bool] = False

    def _check_params(self) -> None:
        """Raise :class:`PodiumInputError` on bad constructor params (called by fit and
        :func:`make_blend`, so a bad config fails before any blending)."""

    def fit(self, probas: list[np.ndarray], y: np.ndarray | None = None) -> Blend:
        """Record the task kind and model count and fit what the blend learns."""
        self._check_params()
        stacked = _stack(probas)
        if self.learns_from_labels and y is None:
            raise ValueError(f"blend {self.method!r} learns from labels: fit needs y")
        self.kind_ = _infer_kind(stacked, y)
        self.n_models_ = stacked.shape[0]
        self._fit(stacked, None if y is None else np.asarray(y))
        return self

    def _fit(self, stacked: np.ndarray, y: np.ndarray | None) -> None:
        """Nothing to learn by default."""

    def predict_proba(self, probas: list[np.ndarray]) -> np.ndarray:
        """The blended ``(n_rows, n_columns)`` matrix of the given models' predictions."""
        check_is_fitted(self, "kind_")
        stacked = _stack(probas)
        if stacked.shape[0] != self.n_models_:
            raise ValueError(f"blend was fitted on {self.n_models_} models, got "
                             f"{stacked.shape[0]}")
        return self._predict(stacked)

    def _predict(self, stacked: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def describe(self) -> dict:
        """What the fitted blend is, JSON-ready, models in the order they were given."""
        check_is_fitted(self, "kind_")
        params = {k: v for k, v in self.get_params().items() if k != "space"}
        return {"method": self.method, **params}


class MeanBlend(Blend):
    """Arithmetic mean of the models' predictions; nothing is fitted, so nothing can leak."""

    method = "mean"

    def _predict(self, stacked: np.ndarray) -> np.ndarray:
        return stacked.mean(axis=0)

    def describe(self) -> dict:
        return {**super().describe(), "weights": [1.0 / self.n_models_] * self.n_models_}


class GeoMeanBlend(Blend):
    """Geometric mean of probabilities: a model confidently ruling a class out weighs more
    than in the arithmetic mean. Single-label rows are renormalised to sum 1; multilabel
    sigmoids are independent and left as they are; regression values (possibly negative)
    fall back to the arithmetic mean. ``eps`` floors probabilities before the log."""

    method = "geomean"

    def __init__(self, eps: float = _EPS) -> None:
        self.eps = eps

    def _check_params(self) -> None:
        if not (isinstance(self.eps, numbers.Real) and 0 < self.eps < 1):
            raise _bad_param(self.method, "eps", f"must be in (0, 1), got {self.eps!r}")

    def _predict(self, stacked: np.ndarray) -> np.ndarray:
        if self.kind_ == REGRESSION:
            return stacked.mean(axis=0)
        blended = np.exp(np.log(np.clip(stacked, self.eps, None)).mean(axis=0))
        return _renormalise(blended) if self.kind_ == SINGLE else blended


class RankMeanBlend(Blend):
    """Mean over models of each column's ranks among the predicted rows, scaled to [0, 1].

    Meant for rank metrics such as AUC, where models with differently calibrated scores
    should count equally. Ranks are relative to the rows predicted together (all OOF rows,
    or the test rows), so the values are not probabilities: single-label rows are
    renormalised to sum 1 only so that argmax, log loss and formatting still work (which
    changes each column's order somewhat for 3+ classes); multilabel columns are left as
    ranks. Not for regression."""

    method = "rank_mean"

    def _fit(self, stacked: np.ndarray, y: np.ndarray | None) -> None:
        _not_for_regression(self.method, self.kind_)

    def _predict(self, stacked: np.ndarray) -> np.ndarray:
        n_rows = stacked.shape[1]
        if n_rows == 1:
            scaled = np.full_like(stacked, 0.5)
        else:  # ties share their average rank
            scaled = (rankdata(stacked, axis=1) - 1.0) / (n_rows - 1)
        blended = scaled.mean(axis=0)
        return _renormalise(blended) if self.kind_ == SINGLE else blended


class VoteBlend(Blend):
    """Majority vote as vote shares: column c is the fraction of models whose argmax is c,
    or for multilabel the fraction predicting class c at the 0.5 threshold. Downstream
    argmax picks the majority (ties: the lowest class index); for multilabel a tied vote
    (exactly half) is a yes at the metrics' ``>= 0.5`` threshold. Not for regression."""

    method = "vote"

    def _fit(self, stacked: np.ndarray, y: np.ndarray | None) -> None:
        _not_for_regression(self.method, self.kind_)

    def _predict(self, stacked: np.ndarray) -> np.ndarray:
        if self.kind_ == MULTILABEL:
            return (stacked >= MULTILABEL_THRESHOLD).mean(axis=0)
        return np.eye(stacked.shape[2])[stacked.argmax(axis=2)].mean(axis=0)


def _pick_best(metric: Metric, space: LabelSpace | None, y: np.ndarray, stacked: np.ndarray,
               candidates: list[np.ndarray]) -> tuple[np.ndarray, float]:
    """The candidate weights scoring best on ``metric``; earlier candidates win ties."""
    best, best_score = candidates[0], metric(y, _mix(candidates[0], stacked), space)
    for weights in candidates[1:]:
        score = metric(y, _mix(weights, stacked), space)
        if metric.is_better(score, best_score):
            best, best_score = weights, score
    return best, best_score


def _surrogate(kind: str, stacked: np.ndarray, y: np.ndarray
               ) -> Callable[[np.ndarray], tuple[float, np.ndarray]]:
    """Loss and gradient in the weights of a convex loss of the weighted mean: log loss
    (cross-entropy of the true class; mean binary cross-entropy for multilabel) or, for
    regression, mean squared error. Convex, so SLSQP finds the global optimum."""
    if kind == SINGLE:
        true = stacked[:, np.arange(stacked.shape[1]), y.astype(np.int64)]  # (models, rows)

        def single(w: np.ndarray) -> tuple[float, np.ndarray]:
            p = np.clip(w @ true, _EPS, None)
            return float(-np.log(p).mean()), -(true / p).mean(axis=1)

        return single
    if kind == MULTILABEL:
        yy = y.astype(np.float64)

        def multilabel(w: np.ndarray) -> tuple[float, np.ndarray]:
            p = np.clip(_mix(w, stacked), _EPS, 1.0 - _EPS)
            loss = -np.mean(yy * np.log(p) + (1.0 - yy) * np.log(1.0 - p))
            dp = -(yy / p - (1.0 - yy) / (1.0 - p)) / p.size
            return float(loss), np.tensordot(stacked, dp, axes=([1, 2], [0, 1]))

        return multilabel
    values, target = stacked[:, :, 0], y.astype(np.float64)

    def squared(w: np.ndarray) -> tuple[float, np.ndarray]:
        residual = w @ values - target
        return float(np.mean(residual**2)), 2.0 * values @ residual / len(target)

    return squared


class WeightedBlend(Blend):
    """Non-negative weights summing to 1, searched on the rows it is fitted on.

    ``objective``:

    - ``"auto"`` (default): the weights minimise log loss (classification) or mean squared
      error (regression) with SLSQP. That *is* the metric for ``logloss`` (and has the same
      minimiser for ``rmse``/``mse``/``r2``); for step-function metrics (accuracy, F1, QWK)
      and AUC, whose gradient in the weights is zero almost everywhere, it is a smooth,
      convex surrogate with a unique reachable optimum.
    - ``"metric"``: the metric itself, derivative-free (Nelder-Mead over softmax logits of
      the weights); can stall on plateaus of step-function metrics.

    Either way the result is then checked against every single model on ``metric`` and the
    best of them kept (the optimised weights win ties), so a surrogate optimum never scores
    worse than the best model on the fitted rows.
    """

    method = "weighted"
    learns_from_labels = True
    OBJECTIVES: ClassVar[tuple[str, ...]] = ("auto", "metric")

    def __init__(self, metric: str | None = None, objective: str = "auto",
                 maxiter: int = 500, space: LabelSpace | None = None) -> None:
        self.metric = metric
        self.objective = objective
        self.maxiter = maxiter
        self.space = space

    def _check_params(self) -> None:
        _needs_metric(self.method, self.metric)
        if self.objective not in self.OBJECTIVES:
            raise _bad_param(self.method, "objective", f"must be one of "
                             f"{', '.join(self.OBJECTIVES)}, got {self.objective!r}")
        if not _is_count(self.maxiter, 1):
            raise _bad_param(self.method, "maxiter", f"must be a positive integer, got "
                             f"{self.maxiter!r}")

    def _fit(self, stacked: np.ndarray, y: np.ndarray | None) -> None:
        metric = get_metric(self.metric)
        n_models = stacked.shape[0]
        self.objective_ = ("metric" if self.objective == "metric" else
                           "mse" if self.kind_ == REGRESSION else "logloss")
        if n_models == 1:
            searched = np.ones(1)
        elif self.objective_ == "metric":
            searched = self._search_metric(metric, stacked, y)
        else:
            searched = self._search_surrogate(stacked, y)
        self.weights_, self.score_ = _pick_best(metric, self.space, y, stacked,
                                                [searched, *np.eye(n_models)])

    def _search_surrogate(self, stacked: np.ndarray, y: np.ndarray) -> np.ndarray:
        n_models = stacked.shape[0]
        result = minimize(
            _surrogate(self.kind_, stacked, y), np.full(n_models, 1.0 / n_models), jac=True,
            method="SLSQP", bounds=[(0.0, 1.0)] * n_models,
            constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0,
                          "jac": lambda w: np.ones_like(w)}],
            options={"maxiter": self.maxiter, "ftol": 1e-12},
        )
        return self._simplex(result.x)

    def _search_metric(self, metric: Metric, stacked: np.ndarray, y: np.ndarray
                       ) -> np.ndarray:
        n_models = stacked.shape[0]
        sign = -1.0 if metric.greater_is_better else 1.0

        def loss(logits: np.ndarray) -> float:
            score = metric(y, _mix(self._softmax(logits), stacked), self.space)
            return np.inf if np.isnan(score) else sign * score

        start = np.vstack([np.zeros(n_models), np.eye(n_models)])  # unit steps, off plateaus
        result = minimize(loss, np.zeros(n_models), method="Nelder-Mead",
                          options={"maxiter": self.maxiter, "initial_simplex": start,
                                   "xatol": 1e-4, "fatol": 1e-10})
        return self._softmax(result.x)

    @staticmethod
    def _softmax(logits: np.ndarray) -> np.ndarray:
        e = np.exp(logits - logits.max())
        return e / e.sum()

    @staticmethod
    def _simplex(weights: np.ndarray) -> np.ndarray:
        weights = np.clip(weights, 0.0, None)
        total = weights.sum()
        return weights / total if total > 0 else np.full(len(weights), 1.0 / len(weights))

    def _predict(self, stacked: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "weights_")
        return _mix(self.weights_, stacked)

    def describe(self) -> dict:
        return {**super().describe(), "objective_used": self.objective_,
                "weights": self.weights_.tolist(), "fitted_score": self.score_}


class HillClimbBlend(Blend):
    """Greedy ensemble selection with replacement (Caruana et al., ICML 2004).

    Starts from the best single model on ``metric``, then each round adds (again, if it
    helps) the model whose inclusion most improves the mean of the selected models; stops
    after ``max_rounds`` additions or when no addition strictly improves. Weights are the
    selection counts over their total, so the result never scores worse than the starting
    model on the fitted rows, and any metric works, smooth or not."""

    method = "hill_climb"
    learns_from_labels = True

    def __init__(self, metric: str | None = None, max_rounds: int = 100,
                 space: LabelSpace | None = None) -> None:
        self.metric = metric
        self.max_rounds = max_rounds
        self.space = space

    def _check_params(self) -> None:
        _needs_metric(self.method, self.metric)
        if not _is_count(self.max_rounds, 0):
            raise _bad_param(self.method, "max_rounds", f"must be a non-negative integer, "
                             f"got {self.max_rounds!r}")

    def _fit(self, stacked: np.ndarray, y: np.ndarray | None) -> None:
        metric = get_metric(self.metric)
        n_models = stacked.shape[0]
        start, score = _pick_best(metric, self.space, y, stacked, list(np.eye(n_models)))
        counts = start.astype(np.int64)
        total = _mix(start, stacked)
        self.start_score_ = score
        for _ in range(self.max_rounds):
            size = counts.sum()
            chosen = None
            for m in range(n_models):
                candidate = metric(y, (total + stacked[m]) / (size + 1), self.space)
                if metric.is_better(candidate, score):
                    chosen, score = m, candidate
            if chosen is None:
                break
            counts[chosen] += 1
            total = total + stacked[chosen]
        self.counts_, self.score_ = counts, score
        self.weights_ = counts / counts.sum()

    def _predict(self, stacked: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "weights_")
        return _mix(self.weights_, stacked)

    def describe(self) -> dict:
        return {**super().describe(), "counts": self.counts_.tolist(),
                "weights": self.weights_.tolist(), "start_score": self.start_score_,
                "fitted_score": self.score_}


BLENDS: dict[str, type[Blend]] = {
    b.method: b
    for b in (MeanBlend, GeoMeanBlend, RankMeanBlend, WeightedBlend, HillClimbBlend, VoteBlend)
}


def make_blend(method: str, params: dict | None = None, metric: str | None = None,
               space: LabelSpace | None = None, key: str = "ensemble.blends.<name>") -> Blend:
    """A fresh, unfitted blend by its config name.

    ``metric`` (normally the competition's) goes to the blends that optimise one, unless
    ``params`` names its own ``metric``; ``space`` is the competition's label space they
    score over (``TaskSpec.label_space``). Blends that optimise nothing ignore both. ``key``
    names the blend's config entry in errors (``ensemble.blends.mean``)."""
    if method not in BLENDS:
        hint = did_you_mean(method, BLENDS)
        raise PodiumInputError(
            f"config key {key}.method: unknown blend {method!r}.{hint} "
            f"Known: {', '.join(BLENDS)}."
        )
    cls = BLENDS[method]
    accepted = [p for p in inspect.signature(cls.__init__).parameters
                if p not in ("self", "space")]
    params = dict(params or {})
    for name in params:
        if name not in accepted:
            hint = did_you_mean(name, accepted, cutoff=0.5)
            raise PodiumInputError(
                f"config key {key}.params: blend {method!r} has no param "
                f"{name!r}.{hint} Known: {', '.join(accepted) or 'none'}."
            )
    if "metric" in accepted and metric is not None:
        params.setdefault("metric", metric)
    if "metric" in accepted:
        params["space"] = space
    blend = cls(**params)
    blend._check_params()
    return blend


def blend_out_of_fold(
    make: Callable[[], Blend], oofs: list[np.ndarray], y: np.ndarray, fold: np.ndarray,
    tests: list[np.ndarray],
) -> tuple[np.ndarray, np.ndarray, dict]:
    """OOF blend (each fold predicted by a blend fitted without its rows), test blend (fitted
    on all OOF rows) and the final blend's description for cv.json.

    Blends that learn nothing from labels give the same result either way and are applied
    to all OOF rows at once (so rank_mean ranks all OOF rows together). For the others the
    description also lists each fold's fitted blend under ``"folds"``, to show how stable
    the weights are."""
    oofs = [np.asarray(o, dtype=np.float64) for o in oofs]
    y, fold = np.asarray(y), np.asarray(fold)
    if len(y) != len(fold):
        raise ValueError(f"y has {len(y)} rows, fold {len(fold)}")
    final = make().fit(oofs, y)
    test = final.predict_proba(tests)
    info = final.describe()
    if not final.learns_from_labels:
        return final.predict_proba(oofs), test, info
    oof, fits = cross_fit(
        fold, lambda train: make().fit([o[train] for o in oofs], y[train]),
        lambda blend, held: blend.predict_proba([o[held] for o in oofs]),
        what=f"blend {final.method!r} learns weights: it")
    info["folds"] = [{"fold": int(f.fold), **f.fitted.describe()} for f in fits]
    return oof.astype(np.float64, copy=False), test, info
