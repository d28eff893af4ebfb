"""Post-processing fitted on OOF predictions: class thresholds, ordinal cut points, priors.

Turning probabilities into decisions at 0.5 (or ordinal values by rounding) leaves score on
the table: an F2 metric wants low thresholds, a rare class wants its own, and a regressor on
grades shrinks towards the mean. Each post-processor here learns a few numbers from OOF rows
only. :func:`postprocess_out_of_fold` scores it honestly, like the stackers: fold k's decisions
come from a post-processor fitted on the other folds, and the one applied to test is fitted on
all OOF rows; its :meth:`fitted_params` are JSON so they can be saved next to the predictions.

Shapes follow :mod:`podium.metrics`: a 1-D truth with 2 probability columns is binary, a 2-D
0/1 truth is multilabel, and an ordinal prediction is one value per row, ``(n,)`` or ``(n, 1)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from podium.ensemble.crossfit import cross_fit
from podium.errors import PodiumInputError, did_you_mean
from podium.metrics import MULTILABEL_THRESHOLD, LabelSpace, quadratic_weighted_kappa


class PostProcessor(Protocol):
    """What :func:`postprocess_out_of_fold` needs: fit on rows, transform rows, export."""

    def fit(self, values: np.ndarray, y: np.ndarray) -> PostProcessor: ...

    def transform(self, values: np.ndarray) -> np.ndarray: ...

    def fitted_params(self) -> dict[str, Any]: ...


def _check_kind(params: dict[str, Any], cls: type) -> None:
    if params.get("postprocessor") != cls.__name__:
        raise ValueError(f"fitted params are for {params.get('postprocessor')!r}, "
                         f"not {cls.__name__}")


# ---------------------------------------------------------------------------- thresholds


def _fbeta_by_threshold(p: np.ndarray, positive: np.ndarray, candidates: np.ndarray,
                        beta: float) -> np.ndarray:
    """F-beta of the rule ``p >= t`` for every candidate ``t`` at once, by sorted counts.

    With P positives, tp true positives and ``pred`` predicted positives,
    F-beta = (1 + b^2) tp / (b^2 P + pred)."""
    b2 = beta * beta
    sorted_all = np.sort(p)
    sorted_pos = np.sort(p[positive])
    predicted = len(p) - np.searchsorted(sorted_all, candidates, side="left")
    tp = len(sorted_pos) - np.searchsorted(sorted_pos, candidates, side="left")
    return (1 + b2) * tp / (b2 * len(sorted_pos) + predicted)


class ClassThresholds:
    """One probability threshold per class, maximising that class's F-beta on the fitted rows.

    For multilabel tasks (independent sigmoids) and binary tasks (the positive column 1 of a
    softmax pair). Candidates are midpoints between consecutive distinct predicted values (so
    a threshold sits in a gap, not on a row), the lowest value (everything positive) and 0.5;
    ``grid`` replaces them with ``n`` evenly spaced values in (0, 1) or an explicit list.
    Because 0.5 is always a candidate, fitting never scores below
    ``metrics.MULTILABEL_THRESHOLD`` on the fitted rows; ties go to the threshold closest to
    0.5, and a class with no positive (or no negative) row keeps 0.5.

    ``transform`` gives the 0/1 decision matrix (class indices for binary). ``at_least_one``
    labels a row that clears no threshold with its class of largest probability / threshold;
    ``top_k`` keeps at most the k most probable classes that cleared their thresholds.
    Fitting ignores both options: they only shape the decisions.
    """

    def __init__(self, beta: float = 1.0, grid: int | Sequence[float] | None = None,
                 at_least_one: bool = False, top_k: int | None = None) -> None:
        if not (isinstance(beta, int | float) and np.isfinite(beta) and beta > 0):
            raise ValueError(f"beta must be a positive number, got {beta!r}")
        if isinstance(grid, bool) or (isinstance(grid, int) and grid < 1):
            raise ValueError(f"grid must be a count >= 1, a list of thresholds or null, "
                             f"got {grid!r}")
        if grid is not None and not isinstance(grid, int):
            grid = [float(t) for t in grid]
            if not grid:
                raise ValueError("grid must not be an empty list")
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int)
                                  or top_k < 1):
            raise ValueError(f"top_k must be an integer >= 1 or null, got {top_k!r}")
        self.beta = float(beta)
        self.grid = grid
        self.at_least_one = bool(at_least_one)
        self.top_k = top_k

    def _candidates(self, p: np.ndarray) -> np.ndarray:
        if isinstance(self.grid, int):
            grid = np.linspace(0.0, 1.0, self.grid + 2)[1:-1]
        elif self.grid is not None:
            grid = np.asarray(self.grid, dtype=np.float64)
        else:
            unique = np.unique(p)
            grid = np.concatenate([unique[:1], (unique[:-1] + unique[1:]) / 2])
        return np.unique(np.append(grid, MULTILABEL_THRESHOLD))

    def _fit_one(self, p: np.ndarray, positive: np.ndarray) -> float:
        if positive.all() or not positive.any():
            return MULTILABEL_THRESHOLD
        candidates = self._candidates(p)
        score = _fbeta_by_threshold(p, positive, candidates, self.beta)
        best = np.flatnonzero(score >= score.max() - 1e-12)
        distance = np.abs(candidates[best] - MULTILABEL_THRESHOLD)
        return float(candidates[best[np.argmin(distance)]])  # lower one on an exact tie

    def fit(self, values: np.ndarray, y: np.ndarray) -> ClassThresholds:
        values = np.asarray(values, dtype=np.float64)
        y = np.asarray(y)
        if values.ndim != 2:
            raise ValueError(f"class thresholds need a probability matrix, got {values.shape}")
        if y.ndim == 1 and values.shape[1] == 2:
            self.binary_ = True
            self.thresholds_ = np.array([self._fit_one(values[:, 1], y == 1)])
        elif y.ndim == 2 and y.shape == values.shape:
            self.binary_ = False
            self.thresholds_ = np.array([self._fit_one(values[:, c], y[:, c] == 1)
                                         for c in range(values.shape[1])])
        else:
            raise PodiumInputError(
                f"config key postprocess: class thresholds apply to binary and multilabel "
                f"tasks; got {values.shape[1]} probability columns and truth of shape "
                f"{y.shape}. Leave multiclass, ordinal and regression tasks without them."
            )
        return self

    def transform(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        if self.binary_:
            return (values[:, 1] >= self.thresholds_[0]).astype(np.int64)
        if values.ndim != 2 or values.shape[1] != len(self.thresholds_):
            raise ValueError(f"expected {len(self.thresholds_)} probability columns, "
                             f"got shape {values.shape}")
        decisions = values >= self.thresholds_
        if self.at_least_one:
            empty = ~decisions.any(axis=1)
            ratio = values[empty] / np.maximum(self.thresholds_, 1e-12)
            decisions[np.flatnonzero(empty), ratio.argmax(axis=1)] = True
        if self.top_k is not None:
            order = np.argsort(-np.where(decisions, values, -np.inf), axis=1, kind="stable")
            rank = np.argsort(order, axis=1, kind="stable")
            decisions &= rank < self.top_k
        return decisions.astype(np.int64)

    def fitted_params(self) -> dict[str, Any]:
        return {"postprocessor": type(self).__name__, "beta": self.beta, "grid": self.grid,
                "at_least_one": self.at_least_one, "top_k": self.top_k,
                "binary": bool(self.binary_),
                "thresholds": [float(t) for t in self.thresholds_]}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> ClassThresholds:
        _check_kind(params, cls)
        made = cls(params["beta"], params["grid"], params["at_least_one"], params["top_k"])
        made.binary_ = bool(params["binary"])
        made.thresholds_ = np.asarray(params["thresholds"], dtype=np.float64)
        return made


# ---------------------------------------------------------------------------- ordinal


def expected_grade(proba: np.ndarray, grades: Sequence[float] | None = None) -> np.ndarray:
    """``sum_k g_k p_k`` per row: class probabilities as one continuous grade to cut.

    Grades default to the column indices 0..K-1. Unlike the argmax, it keeps how sure the
    model was between neighbouring grades, which cut points can then exploit."""
    proba = np.asarray(proba, dtype=np.float64)
    g = np.arange(proba.shape[1], dtype=np.float64) if grades is None else np.asarray(
        grades, dtype=np.float64)
    return proba @ g


def _as_value(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 2 and values.shape[1] > 1:
        return expected_grade(values)
    return values.reshape(-1)


class OrdinalCutPoints:
    """Cut points between grades on a continuous prediction, maximising QWK on fitted rows.

    A regressor trained on grades shrinks towards the mean grade, so rounding at the
    midpoints under-uses the extreme grades; moving the cuts fixes that (the APTOS 2019
    winners' ``OptimizedRounder``). Values are one prediction per row, ``(n,)`` or ``(n, 1)``;
    a wider matrix is taken as class probabilities and reduced by :func:`expected_grade`.
    Cuts start at the midpoints between grades and improve by coordinate descent: each cut
    in turn moves to the best point between its neighbours (so they stay sorted), trying the
    gaps between distinct predicted values, until a pass improves nothing. ``grades`` fixes
    the grade set (the workflow passes the competition's full grade range, so a grade no
    fitted row holds still gets its cut); without it, the distinct truth values (plus 0..K-1
    for probabilities).
    """

    def __init__(self, grades: Sequence[int] | None = None, max_passes: int = 50,
                 max_candidates: int = 256) -> None:
        if grades is not None:
            grades = sorted({int(g) for g in grades})
            if len(grades) < 2:
                raise ValueError(f"grades must list at least two grades, got {grades!r}")
        if isinstance(max_passes, bool) or not isinstance(max_passes, int) or max_passes < 0:
            raise ValueError(f"max_passes must be an integer >= 0, got {max_passes!r}")
        if (isinstance(max_candidates, bool) or not isinstance(max_candidates, int)
                or max_candidates < 2):
            raise ValueError(f"max_candidates must be an integer >= 2, got {max_candidates!r}")
        self.grades = grades
        self.max_passes = max_passes
        self.max_candidates = max_candidates

    def _grades(self, values: np.ndarray, y: np.ndarray) -> np.ndarray:
        if self.grades is not None:
            grades = np.asarray(self.grades, dtype=np.int64)
        else:
            seen = np.unique(y)
            if not np.all(seen == np.round(seen)):
                raise PodiumInputError(
                    "config key postprocess: ordinal cut points need integer grades; the "
                    f"truth has values like {seen[seen != np.round(seen)][0]!r}."
                )
            grades = seen.astype(np.int64)
            if np.asarray(values).ndim == 2 and np.asarray(values).shape[1] > 1:
                grades = np.union1d(grades, np.arange(np.asarray(values).shape[1]))
        if len(grades) < 2:
            raise PodiumInputError(
                "config key postprocess: ordinal cut points need at least two grades in the "
                f"fitted rows, got {grades.tolist()}."
            )
        return grades

    def _gap_points(self, v: np.ndarray, lo: float, hi: float, current: float) -> np.ndarray:
        """Cut positions between ``lo`` and ``hi`` that split the predictions differently."""
        inside = np.unique(v[(v > lo) & (v < hi)])
        if len(inside) > self.max_candidates:
            inside = inside[np.linspace(0, len(inside) - 1, self.max_candidates).astype(int)]
        if len(inside) == 0:
            return np.array([current])
        low = lo if np.isfinite(lo) else inside[0] - 1.0
        high = hi if np.isfinite(hi) else inside[-1] + 1.0
        points = np.concatenate([[low], inside, [high]])
        return np.append((points[:-1] + points[1:]) / 2, current)

    def fit(self, values: np.ndarray, y: np.ndarray) -> OrdinalCutPoints:
        v = _as_value(values)
        y = np.asarray(y).reshape(-1)
        grades = self._grades(values, y)
        unknown = np.setdiff1d(y, grades)
        if len(unknown):
            raise PodiumInputError(f"config key postprocess: grade {unknown[0]!r} is not one "
                                   f"of the cut-point grades {grades.tolist()}.")
        y_index = np.searchsorted(grades, y.astype(np.int64))
        cuts = (grades[:-1] + grades[1:]) / 2.0
        k = len(grades)

        def score(c: np.ndarray) -> float:  # undefined (NaN) kappa never wins
            kappa = quadratic_weighted_kappa(y_index, np.digitize(v, c), k)
            return -np.inf if np.isnan(kappa) else kappa

        best = score(cuts)
        for _ in range(self.max_passes):
            improved = False
            for i in range(len(cuts)):
                lo = cuts[i - 1] if i > 0 else -np.inf
                hi = cuts[i + 1] if i + 1 < len(cuts) else np.inf
                points = self._gap_points(v, lo, hi, cuts[i])
                trial = np.repeat(cuts[None, :], len(points), axis=0)
                trial[:, i] = points
                scores = np.array([score(t) for t in trial])
                top = np.flatnonzero(scores >= scores.max() - 1e-12)
                pick = top[np.argmin(np.abs(points[top] - cuts[i]))]
                if scores[pick] > best + 1e-12:
                    best, cuts[i], improved = float(scores[pick]), points[pick], True
            if not improved:
                break
        self.grades_ = grades
        self.cut_points_ = cuts
        self.fitted_score_ = best
        return self

    def transform(self, values: np.ndarray) -> np.ndarray:
        return self.grades_[np.digitize(_as_value(values), self.cut_points_)]

    def fitted_params(self) -> dict[str, Any]:
        return {"postprocessor": type(self).__name__, "grades": self.grades_.tolist(),
                "cut_points": [float(c) for c in self.cut_points_],
                "max_passes": self.max_passes, "max_candidates": self.max_candidates,
                "fitted_qwk": float(self.fitted_score_)}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> OrdinalCutPoints:
        _check_kind(params, cls)
        made = cls(params["grades"], params["max_passes"], params["max_candidates"])
        made.grades_ = np.asarray(params["grades"], dtype=np.int64)
        made.cut_points_ = np.asarray(params["cut_points"], dtype=np.float64)
        made.fitted_score_ = float(params.get("fitted_qwk", np.nan))
        return made


# ---------------------------------------------------------------------------- priors


def _prior_shift(outcomes: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Reweight each outcome (last axis) and renormalise: Bayes' rule under new priors."""
    shifted = outcomes * weights
    return shifted / np.maximum(shifted.sum(axis=-1, keepdims=True), 1e-300)


class ProbabilityEqualizer:
    """Shift the class priors so the mean probability of each class equals its frequency.

    Class-balanced sampling or weighted losses leave probabilities whose means disagree with
    the label frequencies. Per-class weights rescale each class and renormalise each softmax
    row (Bayes' rule under new priors, as in Saerens et al. 2002), updated Sinkhorn-style
    until the means on the fitted rows match the frequencies; a multilabel class is its own
    yes/no pair. The weights are fitted on OOF and applied unchanged to test, which corrects
    the model's bias towards the training priors (not a shift of the test priors themselves).
    Frequencies are floored at 1/(2n) so an absent class
    is damped, not erased. ``transform`` returns probabilities, not decisions.
    """

    def __init__(self, max_iter: int = 1000, tol: float = 1e-10) -> None:
        if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
            raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}")
        if not (isinstance(tol, int | float) and tol > 0):
            raise ValueError(f"tol must be a positive number, got {tol!r}")
        self.max_iter = max_iter
        self.tol = float(tol)

    def _outcomes(self, values: np.ndarray) -> np.ndarray:
        """Softmax rows as they are; a multilabel column as its (no, yes) pair."""
        values = np.asarray(values, dtype=np.float64)
        return np.stack([1.0 - values, values], axis=-1) if self.multilabel_ else values

    def fit(self, values: np.ndarray, y: np.ndarray) -> ProbabilityEqualizer:
        values = np.asarray(values, dtype=np.float64)
        y = np.asarray(y)
        if values.ndim != 2 or (values.shape[1] < 2 and y.ndim == 1):
            raise PodiumInputError(
                "config key postprocess: equalize needs class probabilities (binary, "
                f"multiclass or multilabel), got predictions of shape {values.shape}."
            )
        self.multilabel_ = y.ndim == 2
        floor = 0.5 / len(y)
        if self.multilabel_:
            frequency = np.clip(y.mean(axis=0), floor, 1.0 - floor)
            prior = np.stack([1.0 - frequency, frequency], axis=-1)
        else:
            prior = np.maximum(np.bincount(y.astype(np.int64), minlength=values.shape[1])
                               / len(y), floor)
            prior = prior / prior.sum()
        outcomes = self._outcomes(values)
        weights = np.ones_like(prior)
        for _ in range(self.max_iter):
            mean = _prior_shift(outcomes, weights).mean(axis=0)
            if np.max(np.abs(mean - prior)) < self.tol:
                break
            weights = weights * prior / np.maximum(mean, 1e-300)
            weights = weights / weights.max(axis=-1, keepdims=True)  # scale-free; keep bounded
        self.weights_ = weights
        return self

    def transform(self, values: np.ndarray) -> np.ndarray:
        shifted = _prior_shift(self._outcomes(values), self.weights_)
        return shifted[..., 1] if self.multilabel_ else shifted

    def fitted_params(self) -> dict[str, Any]:
        return {"postprocessor": type(self).__name__, "max_iter": self.max_iter,
                "tol": self.tol, "multilabel": bool(self.multilabel_),
                "weights": self.weights_.tolist()}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> ProbabilityEqualizer:
        _check_kind(params, cls)
        made = cls(params["max_iter"], params["tol"])
        made.multilabel_ = bool(params["multilabel"])
        made.weights_ = np.asarray(params["weights"], dtype=np.float64)
        return made


# ---------------------------------------------------------------------------- fold by fold


def postprocess_out_of_fold(
    make: Callable[[], PostProcessor], values: np.ndarray, y: np.ndarray, fold: np.ndarray,
    test_values: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """OOF decisions (fold k's from a post-processor fitted on the other folds), test decisions
    from one fitted on every OOF row, and that final one's fitted params.

    The OOF decisions therefore never depend on their own rows' labels, so their score is an
    honest CV estimate of what the test-time post-processor adds."""
    values = np.asarray(values)
    y = np.asarray(y)
    fold = np.asarray(fold)
    if len(fold) == 0:
        raise ValueError("postprocess_out_of_fold needs at least one OOF row")
    oof, _ = cross_fit(fold, lambda train: make().fit(values[train], y[train]),
                       lambda fitted, held: fitted.transform(values[held]),
                       what="post-processing", min_folds=1)
    final = make().fit(values, y)
    return oof, final.transform(test_values), final.fitted_params()


# ---------------------------------------------------------------------------- registry


POSTPROCESSORS: dict[str, Callable[..., PostProcessor]] = {
    "thresholds_f1": lambda **params: ClassThresholds(**{"beta": 1.0, **params}),
    "thresholds_f2": lambda **params: ClassThresholds(**{"beta": 2.0, **params}),
    "ordinal_cutpoints": OrdinalCutPoints,
    "equalize": ProbabilityEqualizer,
}

_BY_CLASS: dict[str, type] = {c.__name__: c for c in
                              (ClassThresholds, OrdinalCutPoints, ProbabilityEqualizer)}


def _in_label_space(name: str, made: PostProcessor, params: dict[str, Any],
                    space: LabelSpace, key: str) -> PostProcessor:
    """``made``, deciding as the competition does: ordinal cut points over the competition's
    grades (unless the params fix them), class thresholds under its multilabel rule (with
    ``at_least_one`` a row that clears no threshold keeps its most likely class, as CV and
    the submission decide)."""
    if isinstance(made, OrdinalCutPoints) and made.grades is None and space.grades:
        made.grades = list(space.grades)
    if isinstance(made, ClassThresholds) and space.multilabel_rule == "at_least_one":
        if params.get("at_least_one") is False:
            raise PodiumInputError(
                f"config key {key}.params.at_least_one: false contradicts "
                "competition.multilabel_rule: at_least_one (the submission never writes an "
                "empty label set, so CV must not score one); drop the param, or set "
                "competition.multilabel_rule: independent.")
        made.at_least_one = True
    return made


def make_postprocessor(name: str, params: dict[str, Any] | None = None,
                       space: LabelSpace | None = None, key: str | None = None
                       ) -> PostProcessor:
    """A fresh, unfitted post-processor by its config name, with the config's params; with
    ``space`` (the competition's label space) it decides within it (:func:`_in_label_space`);
    ``key`` names its config entry in errors (``postprocess.f1``; default
    ``postprocess.<name>``)."""
    key = key or f"postprocess.{name}"
    if name not in POSTPROCESSORS:
        hint = did_you_mean(name, POSTPROCESSORS)
        raise PodiumInputError(
            f"config key {key}: unknown post-processor {name!r}.{hint} "
            f"Known: {', '.join(POSTPROCESSORS)}."
        )
    params = dict(params or {})
    try:
        made = POSTPROCESSORS[name](**params)
    except (TypeError, ValueError) as err:
        raise PodiumInputError(
            f"config key {key}: bad params {params!r} ({err})."
        ) from err
    return made if space is None else _in_label_space(name, made, params, space, key)


def load_postprocessor(params: dict[str, Any]) -> PostProcessor:
    """The fitted post-processor that :meth:`fitted_params` saved, to apply to new rows."""
    kind = params.get("postprocessor")
    if kind not in _BY_CLASS:
        raise ValueError(f"fitted params name no known post-processor: {kind!r}")
    return _BY_CLASS[kind].from_params(params)
