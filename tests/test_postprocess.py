"""Post-processing on constructed OOF predictions whose best thresholds and cuts are known."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, f1_score, fbeta_score

from podium.ensemble.postprocess import (
    POSTPROCESSORS,
    ClassThresholds,
    OrdinalCutPoints,
    ProbabilityEqualizer,
    expected_grade,
    load_postprocessor,
    make_postprocessor,
    postprocess_out_of_fold,
)
from podium.errors import PodiumInputError
from podium.metrics import quadratic_weighted_kappa


def _gap_multilabel(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Class 0: positives in [0.30, 0.35], negatives below 0.25 (best cut in (0.25, 0.30]).
    Class 1: positives in [0.70, 0.90], negatives in [0.55, 0.65] (best cut in (0.65, 0.70]).
    Class 2: noisy, no clean cut."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 3)) < [0.3, 0.4, 0.5]).astype(int)
    p = np.empty((n, 3))
    p[:, 0] = np.where(y[:, 0], rng.uniform(0.30, 0.35, n), rng.uniform(0.0, 0.25, n))
    p[:, 1] = np.where(y[:, 1], rng.uniform(0.70, 0.90, n), rng.uniform(0.55, 0.65, n))
    p[:, 2] = np.clip(0.5 * y[:, 2] + rng.normal(0.25, 0.2, n), 0, 1)
    return p, y


def _noisy_multilabel(n: int = 400, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 4)) < [0.1, 0.2, 0.3, 0.5]).astype(int)
    logits = 1.5 * (2 * y - 1) + rng.normal(-1.0, 1.5, (n, 4))
    return 1 / (1 + np.exp(-logits)), y


def _ordinal(n: int = 500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """True grade 0..4 times 0.8 plus small noise: rounding merges the top grades."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 5, n)
    return 0.8 * y + rng.normal(0, 0.05, n), y


def _softmax(y: np.ndarray, k: int, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = np.eye(k)[y] * 1.5 + rng.normal(0, noise, (len(y), k))
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------------- thresholds


def test_thresholds_recover_known_gaps():
    p, y = _gap_multilabel()
    fitted = ClassThresholds().fit(p, y)
    t = fitted.thresholds_
    assert 0.25 < t[0] <= 0.30
    assert 0.65 < t[1] <= 0.70
    decisions = fitted.transform(p)
    at_half = (p >= 0.5).astype(int)
    for c in (0, 1):
        assert f1_score(y[:, c], decisions[:, c]) == 1.0
        assert f1_score(y[:, c], at_half[:, c], zero_division=0.0) < 0.9
    # class 2 has no clean cut, but 0.5 is a candidate so fitting never does worse than it
    assert f1_score(y[:, 2], decisions[:, 2]) >= f1_score(y[:, 2], at_half[:, 2])


def test_fixed_grid_breaks_ties_towards_half():
    p, y = _gap_multilabel()
    t = ClassThresholds(grid=99).fit(p, y).thresholds_  # 0.01 .. 0.99
    # every grid point in the gap scores F1 = 1; the one nearest 0.5 wins: 0.30 and 0.65
    assert t[0] == pytest.approx(0.30) and t[1] == pytest.approx(0.65)


def test_half_is_always_a_candidate():
    """Fitting never scores below the 0.5 default on its rows, even with a coarse grid."""
    rng = np.random.default_rng(6)
    y = rng.integers(0, 2, (200, 1))
    p = np.where(y == 1, rng.uniform(0.5, 0.6, (200, 1)), rng.uniform(0.4, 0.5, (200, 1)))
    assert ClassThresholds(grid=[0.2, 0.8]).fit(p, y).thresholds_[0] == 0.5


@pytest.mark.parametrize("beta", [1.0, 2.0, 0.5])
def test_thresholds_maximise_fbeta_by_brute_force(beta):
    """The fitted threshold scores (by sklearn) the best F-beta of any cut ``p >= t``."""
    p, y = _noisy_multilabel()
    fitted = ClassThresholds(beta=beta).fit(p, y)
    b2 = beta * beta
    for c in range(y.shape[1]):
        got = fbeta_score(y[:, c], p[:, c] >= fitted.thresholds_[c], beta=beta)
        pred = p[:, c][:, None] >= np.unique(p[:, c])[None, :]  # every distinct cut at once
        truth = y[:, c][:, None] == 1
        tp, fp, fn = (pred & truth).sum(0), (pred & ~truth).sum(0), (~pred & truth).sum(0)
        best = np.max((1 + b2) * tp / ((1 + b2) * tp + b2 * fn + fp))
        assert got == pytest.approx(best, abs=1e-12)


def test_f2_thresholds_no_higher_than_f1():
    p, y = _noisy_multilabel()
    t1 = ClassThresholds(beta=1.0).fit(p, y).thresholds_
    t2 = ClassThresholds(beta=2.0).fit(p, y).thresholds_
    assert np.all(t2 <= t1)
    assert np.any(t2 < t1)  # recall-weighted F2 really moves the cut down


def test_at_least_one_uses_probability_over_threshold():
    fitted = ClassThresholds.from_params({
        "postprocessor": "ClassThresholds", "beta": 1.0, "grid": None, "at_least_one": True,
        "top_k": None, "binary": False, "thresholds": [0.5, 0.2, 0.8]})
    rows = np.array([
        [0.45, 0.19, 0.60],  # nothing clears; ratios 0.90, 0.95, 0.75 -> class 1, not argmax 2
        [0.10, 0.05, 0.70],  # ratios 0.20, 0.25, 0.875 -> class 2
        [0.60, 0.10, 0.10],  # class 0 clears: left as it is
    ])
    np.testing.assert_array_equal(fitted.transform(rows), [[0, 1, 0], [0, 0, 1], [1, 0, 0]])
    fitted.at_least_one = False
    np.testing.assert_array_equal(fitted.transform(rows), [[0, 0, 0], [0, 0, 0], [1, 0, 0]])


@pytest.mark.parametrize(("k", "expected"), [
    (1, [[1, 0, 0], [0, 1, 0], [0, 0, 0], [0, 1, 0]]),
    (2, [[1, 0, 1], [0, 1, 1], [0, 0, 0], [0, 1, 0]]),
    (3, [[1, 1, 1], [0, 1, 1], [0, 0, 0], [0, 1, 0]]),
])
def test_top_k_keeps_most_probable_of_those_above_threshold(k, expected):
    fitted = ClassThresholds(top_k=k)
    fitted.binary_, fitted.thresholds_ = False, np.array([0.5, 0.2, 0.8])
    rows = np.array([
        [0.90, 0.30, 0.85],  # all clear; by probability 0, 2, 1
        [0.40, 0.95, 0.90],  # 1 and 2 clear; class 0 (0.40) does not, whatever k
        [0.10, 0.10, 0.10],  # none clear
        [0.45, 0.30, 0.79],  # only class 1 clears; the more probable 0 and 2 do not count
    ])
    np.testing.assert_array_equal(fitted.transform(rows), expected)


def test_binary_thresholds_return_class_indices():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    p1 = np.where(y == 1, rng.uniform(0.30, 0.35, 200), rng.uniform(0.0, 0.25, 200))
    proba = np.stack([1 - p1, p1], axis=1)
    fitted = ClassThresholds().fit(proba, y)
    assert fitted.binary_ and 0.25 < fitted.thresholds_[0] <= 0.30
    decided = fitted.transform(proba)
    assert decided.shape == (200,) and decided.dtype.kind == "i"
    np.testing.assert_array_equal(decided, y)
    assert np.all(proba.argmax(axis=1) == 0)  # the argmax would have said 0 everywhere


def test_thresholds_refuse_multiclass():
    y = np.arange(30) % 3
    with pytest.raises(PodiumInputError, match="config key postprocess.*binary and multilabel"):
        ClassThresholds().fit(_softmax(y, 3, 1.0, 0), y)


# ---------------------------------------------------------------------------- ordinal


def test_quadratic_kappa_matches_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 300)
    pred = np.clip(y + rng.integers(-2, 3, 300), 0, 4)
    assert quadratic_weighted_kappa(y, pred, 5) == pytest.approx(
        cohen_kappa_score(y, pred, weights="quadratic"), abs=1e-12)


def test_cut_points_beat_rounding_and_recover_grades():
    pred, y = _ordinal()
    rounded = np.clip(np.rint(pred), 0, 4).astype(int)
    rounding_qwk = cohen_kappa_score(y, rounded, weights="quadratic")
    fitted = OrdinalCutPoints().fit(pred, y)
    grades = fitted.transform(pred)
    fitted_qwk = cohen_kappa_score(y, grades, weights="quadratic")
    assert rounding_qwk < 0.97
    assert fitted_qwk > 0.995 and fitted_qwk > rounding_qwk
    cuts = fitted.cut_points_
    assert len(cuts) == 4 and np.all(np.diff(cuts) > 0)
    assert grades.dtype.kind == "i"
    assert fitted.fitted_score_ == pytest.approx(fitted_qwk)


def test_cut_points_accept_value_column_and_float_grades():
    """The pipeline's ordinal predictions are one ``pred`` column and float-encoded grades."""
    pred, y = _ordinal()
    fitted = OrdinalCutPoints().fit(pred[:, None] + 1, y.astype(float) + 1)  # grades 1..5
    assert fitted.grades_.tolist() == [1, 2, 3, 4, 5]
    grades = fitted.transform(pred[:, None] + 1)
    assert cohen_kappa_score(y + 1, grades, weights="quadratic") > 0.995


def test_cut_points_on_expected_grade_of_probabilities():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 5, 400)
    shrunk = np.clip(np.rint(0.6 * y + 0.8), 0, 4).astype(int)  # a model biased to the middle
    proba = 0.7 * np.eye(5)[shrunk] + 0.3 * np.eye(5)[np.clip(shrunk + (y > shrunk), 0, 4)]
    assert np.allclose(expected_grade(np.eye(5)), np.arange(5))
    fitted = OrdinalCutPoints().fit(proba, y)
    np.testing.assert_array_equal(fitted.transform(proba),
                                  OrdinalCutPoints().fit(expected_grade(proba), y)
                                  .transform(expected_grade(proba)))
    assert (cohen_kappa_score(y, fitted.transform(proba), weights="quadratic")
            > cohen_kappa_score(y, proba.argmax(axis=1), weights="quadratic"))


# ---------------------------------------------------------------------------- equalizer


def test_equalizer_matches_class_frequencies_softmax():
    rng = np.random.default_rng(2)
    y = rng.choice(3, 600, p=[0.6, 0.3, 0.1])
    proba = _softmax(y, 3, 1.0, 3)
    proba = proba * [0.5, 1.0, 2.0]  # a model trained on balanced batches over-calls class 2
    proba /= proba.sum(axis=1, keepdims=True)
    frequency = np.bincount(y, minlength=3) / len(y)
    assert np.max(np.abs(proba.mean(axis=0) - frequency)) > 0.05
    fitted = ProbabilityEqualizer().fit(proba, y)
    out = fitted.transform(proba)
    np.testing.assert_allclose(out.mean(axis=0), frequency, atol=1e-6)
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    assert np.all(out.argmax(axis=1)[proba.argmax(axis=1) == 0] == 0)  # order kept within row


def test_equalizer_matches_class_frequencies_multilabel():
    p, y = _noisy_multilabel()
    out = ProbabilityEqualizer().fit(p, y).transform(p)
    np.testing.assert_allclose(out.mean(axis=0), y.mean(axis=0), atol=1e-6)
    assert np.all((out > 0) & (out < 1))
    for c in range(y.shape[1]):  # monotone per class: ranking (AUC) unchanged
        order = np.argsort(p[:, c])
        assert np.all(np.diff(out[order, c]) >= -1e-12)


# ---------------------------------------------------------------------------- fold by fold


def _binary_case():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 240)
    p1 = np.clip(0.3 * y + rng.normal(0.3, 0.15, 240), 0, 1)
    return np.stack([1 - p1, p1], axis=1), y, lambda v: 1 - v


def _multilabel_case():
    p, y = _noisy_multilabel(240, 8)
    return p, y, lambda v: 1 - v


def _ordinal_case():
    pred, y = _ordinal(240, 9)
    return pred + np.random.default_rng(9).normal(0, 0.3, 240), y, lambda v: (v + 2) % 5


def _multiclass_case():
    y = np.random.default_rng(10).choice(3, 240, p=[0.5, 0.3, 0.2])
    return _softmax(y, 3, 1.0, 11), y, lambda v: (v + 1) % 3


CASES = {
    "thresholds_f1": _multilabel_case, "thresholds_f2": _binary_case,
    "ordinal_cutpoints": _ordinal_case, "equalize": _multiclass_case,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_oof_decisions_ignore_their_own_labels(name):
    values, y, scramble = CASES[name]()
    fold = np.arange(len(y)) % 4
    test_values = values[:50]
    make = lambda: make_postprocessor(name, {})  # noqa: E731
    oof, test, params = postprocess_out_of_fold(make, values, y, fold, test_values)
    assert len(oof) == len(y) and len(test) == 50
    moved_elsewhere = False
    for k in range(4):
        changed = y.copy()
        changed[fold == k] = scramble(y[fold == k])
        oof_k, _, params_k = postprocess_out_of_fold(make, values, changed, fold, test_values)
        np.testing.assert_array_equal(oof_k[fold == k], oof[fold == k])
        moved_elsewhere |= (not np.array_equal(oof_k[fold != k], oof[fold != k])
                            or params_k != params)
    assert moved_elsewhere  # the labels do matter, just never to their own fold


def test_oof_folds_match_fitting_on_the_other_folds():
    p, y = _noisy_multilabel(200, 4)
    fold = np.arange(200) % 3
    oof, test, params = postprocess_out_of_fold(ClassThresholds, p, y, fold, p[:10])
    for k in range(3):
        alone = ClassThresholds().fit(p[fold != k], y[fold != k]).transform(p[fold == k])
        np.testing.assert_array_equal(oof[fold == k], alone)
    np.testing.assert_array_equal(test, ClassThresholds().fit(p, y).transform(p[:10]))
    assert params == ClassThresholds().fit(p, y).fitted_params()


# ---------------------------------------------------------------------------- params, errors


@pytest.mark.parametrize(("name", "params"), [
    ("thresholds_f1", {"at_least_one": True, "top_k": 2}),
    ("thresholds_f2", {"grid": [0.1, 0.2, 0.3, 0.4]}),
    ("ordinal_cutpoints", {}),
    ("equalize", {}),
])
def test_fitted_params_round_trip_through_json(name, params):
    values, y, _ = CASES[name]()
    fitted = make_postprocessor(name, params).fit(values[:200], y[:200])
    saved = json.loads(json.dumps(fitted.fitted_params()))
    restored = load_postprocessor(saved)
    assert type(restored) is type(fitted)
    assert type(fitted).from_params(saved).fitted_params() == fitted.fitted_params()
    new_rows = values[200:]
    out, back = fitted.transform(new_rows), restored.transform(new_rows)
    assert out.dtype == back.dtype
    np.testing.assert_array_equal(out, back)


def test_from_params_refuses_another_kind():
    params = OrdinalCutPoints().fit(*_ordinal(100)).fitted_params()
    with pytest.raises(ValueError, match="OrdinalCutPoints"):
        ClassThresholds.from_params(params)
    with pytest.raises(ValueError, match="no known post-processor"):
        load_postprocessor({"postprocessor": "Nope"})


def test_registry_names_and_params():
    assert {"thresholds_f1", "thresholds_f2", "ordinal_cutpoints", "equalize"} <= set(
        POSTPROCESSORS)
    assert make_postprocessor("thresholds_f2").beta == 2.0
    assert make_postprocessor("thresholds_f1", {"top_k": 3}).top_k == 3


def test_unknown_name_suggests_close_ones():
    with pytest.raises(PodiumInputError, match=r"postprocess\.thresholds_f3.*thresholds_f"):
        make_postprocessor("thresholds_f3")
    with pytest.raises(PodiumInputError, match=r"postprocess\.ordinal_cutpoint.*ordinal_cutpoints"):
        make_postprocessor("ordinal_cutpoint")


@pytest.mark.parametrize(("name", "params"), [
    ("thresholds_f1", {"beta": -1}),
    ("thresholds_f1", {"top_k": 0}),
    ("thresholds_f2", {"grid": 0}),
    ("thresholds_f1", {"treshold": 0.3}),
    ("ordinal_cutpoints", {"grades": [3]}),
    ("equalize", {"tol": 0}),
])
def test_bad_params_name_the_config_key(name, params):
    with pytest.raises(PodiumInputError, match=rf"config key postprocess\.{name}: bad params"):
        make_postprocessor(name, params)
