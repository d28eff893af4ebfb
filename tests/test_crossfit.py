"""The one fold-by-fold loop (podium.ensemble.crossfit) against scikit-learn's own."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import PredefinedSplit, cross_val_predict

from podium.ensemble.crossfit import cross_fit
from podium.errors import PodiumInputError


def _data(n: int = 90, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = (x[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(int)
    return x, y, rng.permutation(np.arange(n) % 3)


def test_matches_cross_val_predict_with_the_same_folds():
    """Fold k's rows are predicted by a model fitted on the other folds only: the same OOF
    probabilities as scikit-learn's cross_val_predict with a PredefinedSplit."""
    x, y, fold = _data()
    oof, fits = cross_fit(fold, lambda train: LogisticRegression().fit(x[train], y[train]),
                          lambda model, held: model.predict_proba(x[held]), what="a test")
    reference = cross_val_predict(LogisticRegression(), x, y, cv=PredefinedSplit(fold),
                                  method="predict_proba")
    np.testing.assert_allclose(oof, reference, rtol=0, atol=1e-12)
    assert [f.fold for f in fits] == [0, 1, 2] and all(type(f.fold) is int for f in fits)
    for f in fits:
        np.testing.assert_array_equal(f.held, fold == f.fold)


def test_fit_never_sees_the_rows_it_is_applied_to():
    fold = np.array(["b", "a", "b", "c", "a", "c", "b"])
    seen: list[tuple[np.ndarray, np.ndarray]] = []

    def apply(train: np.ndarray, held: np.ndarray) -> np.ndarray:
        seen.append((train, held))
        return np.full((held.sum(), 2, 2), held.sum(), dtype=np.uint8)

    out, fits = cross_fit(fold, lambda train: train, apply, what="a test")
    assert [f.fold for f in fits] == ["a", "b", "c"]
    for train, held in seen:
        assert not (train & held).any() and (train | held).all()
    assert out.shape == (7, 2, 2) and out.dtype == np.uint8  # the outputs' own shape and dtype
    np.testing.assert_array_equal(out[:, 0, 0], [3, 2, 3, 2, 2, 2, 3])


def test_too_few_folds_are_refused_by_name():
    with pytest.raises(PodiumInputError, match="fold-by-fold post-processing needs at least two"):
        cross_fit(np.zeros(4), lambda t: t, lambda f, h: np.zeros(h.sum()),
                  what="fold-by-fold post-processing")
    out, fits = cross_fit(np.zeros(4), lambda t: t, lambda f, h: np.ones(h.sum()), what="x",
                          min_folds=1)
    assert len(fits) == 1 and out.tolist() == [1, 1, 1, 1]
