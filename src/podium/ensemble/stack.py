"""Level-2 stackers trained fold by fold on OOF predictions, with the level-1 folds.

For fold k the stacker is fitted on the OOF rows of the other folds only and predicts fold k's
rows, so no row is ever predicted by a model that saw its label; test predictions are the
mean of the k stackers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from podium.ensemble.crossfit import cross_fit
from podium.errors import PodiumInputError, did_you_mean


def _lightgbm(params: dict, seed: int, threads: int, regression: bool) -> Any:
    from lightgbm import LGBMClassifier, LGBMRegressor

    model = LGBMRegressor if regression else LGBMClassifier
    return model(**{"verbose": -1, **params}, random_state=seed, n_jobs=threads)


def _xgboost(params: dict, seed: int, threads: int, regression: bool) -> Any:
    from xgboost import XGBClassifier, XGBRegressor

    model = XGBRegressor if regression else XGBClassifier
    return model(**{"tree_method": "hist", **params}, random_state=seed, n_jobs=threads)


def _catboost(params: dict, seed: int, threads: int, regression: bool) -> Any:
    from catboost import CatBoostClassifier, CatBoostRegressor

    model = CatBoostRegressor if regression else CatBoostClassifier
    return model(**{"verbose": False, **params}, random_seed=seed, thread_count=threads,
                 allow_writing_files=False)


def _linear(params: dict, seed: int, threads: int, regression: bool) -> Any:
    """Logistic regression on probabilities; ridge regression on predicted values."""
    from sklearn.linear_model import LogisticRegression, Ridge

    if regression:
        return Ridge(**params, random_state=seed)
    return LogisticRegression(**{"max_iter": 1000, **params}, random_state=seed)


STACKERS: dict[str, Callable[[dict, int, int, bool], Any]] = {
    "lightgbm": _lightgbm, "xgboost": _xgboost, "catboost": _catboost, "linear": _linear,
    "logistic": _linear,  # the name earlier configs used
}


def make_stacker(library: str, params: dict, seed: int = 0, threads: int = 1,
                 regression: bool = False) -> Any:
    """A fresh, unfitted level-2 model by its config name: a classifier, or a regressor for
    regression and ordinal targets."""
    if library not in STACKERS:
        hint = did_you_mean(library, STACKERS)
        raise PodiumInputError(
            f"config key ensemble.stackers.<name>.library: unknown stacker {library!r}.{hint} "
            f"Known: {', '.join(STACKERS)}."
        )
    try:
        return STACKERS[library](dict(params), seed, threads, regression)
    except TypeError as err:
        raise PodiumInputError(
            f"config key ensemble.stackers.<name>.params: {library} rejected the params ({err})."
        ) from err


def stack_features(frames: dict[str, pd.DataFrame], ids: pd.Series, columns: list[str]
                   ) -> np.ndarray:
    """Side-by-side probabilities of every level-1 model, rows in the order of ``ids``."""
    blocks = [f.set_index("id").loc[ids, columns].to_numpy(np.float64)
              for _, f in sorted(frames.items())]
    return np.hstack(blocks)


def _fit_present(estimator: Any, x: np.ndarray, y: np.ndarray) -> tuple[Any, np.ndarray]:
    """The estimator fitted on the classes present in ``y`` (``None`` when only one is), and
    those classes."""
    present = np.unique(y)
    if len(present) == 1:
        return None, present
    return estimator.fit(x, np.searchsorted(present, y)), present


def _predict_present(fitted: tuple[Any, np.ndarray], x: np.ndarray,
                     n_classes: int) -> np.ndarray:
    """Probabilities of a :func:`_fit_present` estimator spread back over all ``n_classes``
    (certainty for the one class seen, when only one was)."""
    estimator, present = fitted
    out = np.zeros((len(x), n_classes))
    if estimator is None:
        out[:, present[0]] = 1.0
    else:
        out[:, present] = estimator.predict_proba(x)
    return out


def stack_out_of_fold(
    make_estimator: Callable[[], Any], features: np.ndarray, y: np.ndarray, fold: np.ndarray,
    test_features: np.ndarray, n_classes: int,
) -> tuple[np.ndarray, np.ndarray]:
    """OOF probabilities (each fold predicted by a stacker fitted without it) and mean test.

    A multilabel ``y`` (``n x n_classes`` 0/1) gets one binary stacker per class, each on
    all the level-1 features, so it can use how the classes co-occur; a float ``y``
    (regression, ordinal) gets a regressor and one ``pred`` column."""
    if np.issubdtype(y.dtype, np.floating) and y.ndim == 1:  # regression, ordinal: values
        oof, fits = cross_fit(fold, lambda train: make_estimator().fit(features[train], y[train]),
                              lambda estimator, held: estimator.predict(features[held]),
                              what="stacking", min_folds=1)
        tests = [f.fitted.predict(test_features) for f in fits]
        return oof.astype(np.float64)[:, None], np.mean(tests, axis=0)[:, None]
    if y.ndim == 2:
        per_class = [stack_out_of_fold(make_estimator, features, y[:, c], fold, test_features, 2)
                     for c in range(n_classes)]
        return (np.stack([oof[:, 1] for oof, _ in per_class], axis=1),
                np.stack([test[:, 1] for _, test in per_class], axis=1))
    oof, fits = cross_fit(
        fold, lambda train: _fit_present(make_estimator(), features[train], y[train]),
        lambda fitted, held: _predict_present(fitted, features[held], n_classes),
        what="stacking", min_folds=1)
    tests = [_predict_present(f.fitted, test_features, n_classes) for f in fits]
    return oof, np.mean(tests, axis=0)
