"""Blends on constructed predictions with known answers, and their out-of-fold discipline."""

from __future__ import annotations

import numpy as np
import pytest

from podium.ensemble.blend import (
    BLENDS,
    GeoMeanBlend,
    HillClimbBlend,
    MeanBlend,
    RankMeanBlend,
    VoteBlend,
    WeightedBlend,
    blend_out_of_fold,
    make_blend,
)
from podium.errors import PodiumInputError
from podium.metrics import METRICS, get_metric


def _noisy_proba(y: np.ndarray, noise: float, seed: int, n_classes: int = 3) -> np.ndarray:
    """Softmax rows leaning towards ``y`` with Gaussian logit noise."""
    rng = np.random.default_rng(seed)
    logits = np.eye(n_classes)[y] * 2 + rng.normal(0, noise, (len(y), n_classes))
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def _pure_noise(n: int, seed: int, n_classes: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.ones(n_classes), n)


def _at_least_as_good(metric_name: str, blended: float, best_single: float) -> bool:
    metric = get_metric(metric_name)
    return blended == pytest.approx(best_single) or metric.is_better(blended, best_single)


# --- unfitted blends on hand-computed arrays -------------------------------------------------


def test_mean_blend_averages():
    a, b = np.array([[0.2, 0.8], [1.0, 0.0]]), np.array([[0.6, 0.4], [0.5, 0.5]])
    for blend in (MeanBlend(), make_blend("mean")):
        np.testing.assert_allclose(blend.fit([a, b], np.array([1, 0])).predict_proba([a, b]),
                                   [[0.4, 0.6], [0.75, 0.25]])


def test_geomean_renormalises_single_label_rows():
    a = np.array([[0.1, 0.4, 0.5], [0.25, 0.25, 0.5]])
    b = np.array([[0.4, 0.1, 0.5], [0.25, 0.25, 0.5]])
    out = GeoMeanBlend().fit([a, b], np.array([2, 0])).predict_proba([a, b])
    # row 0: sqrt products 0.2, 0.2, 0.5 -> sum 0.9; the arithmetic mean would be .25 .25 .5
    np.testing.assert_allclose(out, [[2 / 9, 2 / 9, 5 / 9], [0.25, 0.25, 0.5]])


def test_geomean_leaves_multilabel_sigmoids_and_falls_back_to_mean_for_regression():
    a, b = np.array([[0.25, 0.9]]), np.array([[1.0, 0.1]])
    out = GeoMeanBlend().fit([a, b], np.array([[1, 0]])).predict_proba([a, b])
    np.testing.assert_allclose(out, [[0.5, 0.3]])  # not renormalised: sums to 0.8
    r1, r2 = np.array([[-1.0], [2.0]]), np.array([[3.0], [4.0]])
    out = GeoMeanBlend().fit([r1, r2], np.array([0.5, 3.5])).predict_proba([r1, r2])
    np.testing.assert_allclose(out, [[1.0], [3.0]])


def test_rank_mean_scales_ranks_and_renormalises_single_label():
    a = np.array([[0.9, 0.1], [0.7, 0.3], [0.8, 0.2]])
    b = np.array([[0.4, 0.6], [0.5, 0.5], [0.6, 0.4]])
    # p_1 ranks scaled to [0, 1]: a -> 0, 1, .5 and b -> 1, .5, 0
    out = RankMeanBlend().fit([a, b], np.array([0, 1, 0])).predict_proba([a, b])
    np.testing.assert_allclose(out, [[0.5, 0.5], [0.25, 0.75], [0.75, 0.25]])
    c = np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]])  # column 2 tied: both 0.5
    single = RankMeanBlend().fit([c], np.array([1, 0])).predict_proba([c])
    np.testing.assert_allclose(single, [[0, 2 / 3, 1 / 3], [2 / 3, 0, 1 / 3]])
    multi = RankMeanBlend().fit([c], np.array([[0, 1, 0], [1, 0, 1]])).predict_proba([c])
    np.testing.assert_allclose(multi, [[0, 1, 0.5], [1, 0, 0.5]])


def test_rank_mean_keeps_a_single_models_auc():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 50)
    p = _noisy_proba(y, 1.5, 1, n_classes=2)
    auc = get_metric("auc")
    assert auc(y, RankMeanBlend().fit([p], y).predict_proba([p])) == pytest.approx(auc(y, p))


def test_vote_shares_for_single_label_and_multilabel():
    m1 = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3]])
    m2 = np.array([[0.1, 0.8, 0.1], [0.3, 0.3, 0.4]])
    m3 = np.array([[0.5, 0.4, 0.1], [0.1, 0.2, 0.7]])
    out = VoteBlend().fit([m1, m2, m3], np.array([0, 2])).predict_proba([m1, m2, m3])
    np.testing.assert_allclose(out, [[2 / 3, 1 / 3, 0], [0, 1 / 3, 2 / 3]])
    l1, l2, l3 = (np.array([[0.6, 0.2, 0.1]]), np.array([[0.7, 0.9, 0.2]]),
                  np.array([[0.4, 0.55, 0.5]]))
    out = VoteBlend().fit([l1, l2, l3], np.array([[1, 1, 0]])).predict_proba([l1, l2, l3])
    np.testing.assert_allclose(out, [[2 / 3, 2 / 3, 1 / 3]])  # 0.5 counts as a yes


@pytest.mark.parametrize("method", ["vote", "rank_mean"])
def test_vote_and_rank_mean_refuse_regression(method):
    r = np.array([[1.0], [2.0]])
    with pytest.raises(PodiumInputError, match="regression"):
        make_blend(method).fit([r, r], np.array([1.0, 2.0]))


# --- weighted --------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["logloss", "accuracy", "auc"])
def test_weighted_puts_the_weight_on_the_good_model(metric):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 300)
    good, noise = _noisy_proba(y, 1.0, 2), _pure_noise(300, 3)
    blend = make_blend("weighted", None, metric).fit([noise, good], y)
    assert blend.objective_ == "logloss"
    assert blend.weights_[1] > 0.95
    assert (blend.weights_ >= 0).all() and blend.weights_.sum() == pytest.approx(1.0)
    m = get_metric(metric)
    best = min(m(y, good), m(y, noise)) if metric == "logloss" else max(m(y, good),
                                                                         m(y, noise))
    assert _at_least_as_good(metric, m(y, blend.predict_proba([noise, good])), best)


def test_weighted_splits_between_equally_good_independent_models_and_beats_both():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 600)
    a, b = _noisy_proba(y, 1.5, 5), _noisy_proba(y, 1.5, 6)
    blend = WeightedBlend(metric="logloss").fit([a, b], y)
    assert 0.3 < blend.weights_[0] < 0.7
    logloss = get_metric("logloss")
    assert blend.score_ < min(logloss(y, a), logloss(y, b))
    assert blend.score_ == pytest.approx(logloss(y, blend.predict_proba([a, b])))


def test_weighted_keeps_the_best_single_model_when_the_logloss_optimum_scores_worse():
    """A: barely right everywhere (accuracy 1, poor log loss); B: confident, wrong on 1/5 of
    the rows. The log-loss optimum leans on B and loses accuracy; the guard keeps A."""
    y = np.array([0, 1] * 10)
    right = np.where(np.arange(20) < 16, 0.99, 0.3)
    a, b = np.zeros((20, 2)), np.zeros((20, 2))
    a[np.arange(20), y], a[np.arange(20), 1 - y] = 0.51, 0.49
    b[np.arange(20), y], b[np.arange(20), 1 - y] = right, 1 - right
    searched = WeightedBlend(metric="logloss").fit([a, b], y).weights_
    assert searched[1] > 0.5  # what the surrogate alone would pick
    blend = WeightedBlend(metric="accuracy").fit([a, b], y)
    np.testing.assert_allclose(blend.weights_, [1.0, 0.0])
    assert blend.score_ == 1.0


@pytest.mark.parametrize("objective", ["auto", "metric"])
def test_weighted_weights_are_a_distribution_and_never_worse_than_best_model(objective):
    rng = np.random.default_rng(7)
    y = rng.integers(0, 3, 200)
    models = [_noisy_proba(y, s, 10 + i) for i, s in enumerate((1.2, 1.6, 2.5))]
    models.append(_pure_noise(200, 20))
    blend = make_blend("weighted", {"objective": objective}, "accuracy").fit(models, y)
    w = blend.weights_
    assert w.shape == (4,) and (w >= 0).all() and w.sum() == pytest.approx(1.0)
    acc = get_metric("accuracy")
    assert acc(y, blend.predict_proba(models)) >= max(acc(y, m) for m in models)
    assert blend.describe()["weights"] == pytest.approx(w.tolist())


def test_weighted_multilabel_uses_binary_cross_entropy():
    rng = np.random.default_rng(8)
    y = (rng.random((200, 3)) < 0.4).astype(int)
    good = np.clip(y + rng.normal(0, 0.3, y.shape), 0.01, 0.99)
    noise = rng.random(y.shape)
    blend = WeightedBlend(metric="f1_macro").fit([good, noise], y)
    assert blend.weights_[0] > 0.9
    assert blend.predict_proba([good, noise]).shape == (200, 3)


@pytest.mark.skipif("rmse" not in METRICS, reason="no regression metric registered")
@pytest.mark.parametrize("method", ["weighted", "hill_climb"])
def test_value_blends_fit_regression_predictions(method):
    rng = np.random.default_rng(9)
    y = rng.normal(3.0, 1.0, 200)
    good, noise = (y + rng.normal(0, 0.3, 200))[:, None], rng.normal(3.0, 1.0, (200, 1))
    blend = make_blend(method, None, "rmse").fit([noise, good], y)
    assert blend.weights_[1] > 0.9
    rmse = get_metric("rmse")
    out = blend.predict_proba([noise, good])
    assert out.shape == (200, 1) and rmse(y, out) <= rmse(y, good) + 1e-12


# --- hill climbing ---------------------------------------------------------------------------


def _complementary_models() -> tuple[np.ndarray, list[np.ndarray]]:
    """Three binary models, each wrong (0.6 on the wrong class) on its own third of the rows
    and right (0.9) elsewhere: each scores 4/6 accuracy, any two of them averaged 6/6."""
    y = np.array([0, 1, 0, 1, 0, 1])
    models = []
    for m in range(3):
        p_true = np.full(6, 0.9)
        p_true[[2 * m, 2 * m + 1]] = 0.4
        p = np.zeros((6, 2))
        p[np.arange(6), y] = p_true
        p[np.arange(6), 1 - y] = 1 - p_true
        models.append(p)
    return y, models


def test_hill_climb_finds_a_combination_that_beats_every_single_model():
    y, models = _complementary_models()
    acc = get_metric("accuracy")
    assert [acc(y, m) for m in models] == pytest.approx([4 / 6] * 3)
    blend = HillClimbBlend(metric="accuracy").fit(models, y)
    # start: model 0 (first of the tied best); round 1: model 1 is the first to reach 6/6;
    # round 2: nothing improves on 6/6, so it stops
    assert blend.counts_.tolist() == [1, 1, 0]
    np.testing.assert_allclose(blend.weights_, [0.5, 0.5, 0.0])
    assert blend.score_ == 1.0 and blend.start_score_ == pytest.approx(4 / 6)
    assert acc(y, blend.predict_proba(models)) == 1.0
    no_rounds = HillClimbBlend(metric="accuracy", max_rounds=0).fit(models, y)
    np.testing.assert_allclose(no_rounds.weights_, [1.0, 0.0, 0.0])


@pytest.mark.parametrize("metric", ["logloss", "accuracy"])
def test_hill_climb_weights_are_counts_and_it_never_ends_worse_than_its_start(metric):
    rng = np.random.default_rng(11)
    y = rng.integers(0, 3, 150)
    models = [_noisy_proba(y, s, 30 + i) for i, s in enumerate((1.4, 1.5, 1.6, 1.7))]
    blend = make_blend("hill_climb", {"max_rounds": 7}, metric).fit(models, y)
    counts = blend.counts_
    assert counts.sum() <= 1 + 7 and (counts >= 0).all()
    np.testing.assert_allclose(blend.weights_, counts / counts.sum())
    m = get_metric(metric)
    singles = [m(y, p) for p in models]
    best_single = min(singles) if metric == "logloss" else max(singles)
    assert blend.start_score_ == pytest.approx(best_single)
    fitted = m(y, blend.predict_proba(models))
    assert fitted == pytest.approx(blend.score_)
    assert _at_least_as_good(metric, fitted, best_single)
    if metric == "logloss":  # averaging noisy models helps log loss: it must have climbed
        assert counts.sum() > 1 and get_metric(metric).is_better(fitted, best_single)


# --- out of fold -----------------------------------------------------------------------------


def _two_views(n: int = 90, n_folds: int = 3):
    """Model A fits the true labels; model B fits labels shifted on fold 1. Which is better
    on the training folds depends on fold 1's labels, so scrambling those moves the blends
    of folds 0 and 2 but must not move fold 1's."""
    rng = np.random.default_rng(12)
    y = rng.integers(0, 3, n)
    fold = np.arange(n) % n_folds
    shifted = y.copy()
    shifted[fold == 1] = (shifted[fold == 1] + 1) % 3
    oofs = [_noisy_proba(y, 1.0, 13), _noisy_proba(shifted, 0.8, 14)]
    tests = [o[:7] + 0.0 for o in oofs]
    return y, shifted, fold, oofs, tests


@pytest.mark.parametrize(("method", "metric"), [("weighted", "logloss"),
                                                ("weighted", "accuracy"),
                                                ("hill_climb", "logloss"),
                                                ("hill_climb", "accuracy")])
def test_blend_oof_ignores_held_out_labels_and_test_uses_all_rows(method, metric):
    y, shifted, fold, oofs, tests = _two_views()

    def run(labels):
        return blend_out_of_fold(lambda: make_blend(method, None, metric), oofs, labels, fold,
                                 tests)

    oof, test, info = run(y)
    assert oof.shape == (90, 3) and test.shape == (7, 3)
    np.testing.assert_allclose(oof.sum(axis=1), 1.0)
    full = make_blend(method, None, metric).fit(oofs, y)
    np.testing.assert_array_equal(test, full.predict_proba(tests))
    assert info["weights"] == pytest.approx(full.weights_.tolist())
    assert [f["fold"] for f in info["folds"]] == [0, 1, 2]
    held = fold == 1
    oof2, test2, info2 = run(shifted)
    np.testing.assert_array_equal(oof2[held], oof[held])
    assert not np.allclose(oof2[~held], oof[~held])
    assert not np.allclose(test2, test)  # the test blend saw fold 1's labels too
    # each fold's blend is the one fitted without that fold
    for k in (0, 1, 2):
        rows = fold == k
        own = make_blend(method, None, metric).fit([o[~rows] for o in oofs], y[~rows])
        np.testing.assert_array_equal(oof[rows], own.predict_proba([o[rows] for o in oofs]))


def test_blend_oof_multilabel_weighted_is_leak_free():
    rng = np.random.default_rng(15)
    y = (rng.random((60, 3)) < 0.5).astype(int)
    fold = np.arange(60) % 3
    oofs = [np.clip(y + rng.normal(0, 0.3, y.shape), 0.01, 0.99), rng.random(y.shape)]
    make = lambda: make_blend("weighted", None, "f1_macro")  # noqa: E731
    oof, test, _ = blend_out_of_fold(make, oofs, y, fold, [o[:4] for o in oofs])
    assert oof.shape == (60, 3) and test.shape == (4, 3)
    scrambled = y.copy()
    scrambled[fold == 2] = 1 - scrambled[fold == 2]
    oof2, _, _ = blend_out_of_fold(make, oofs, scrambled, fold, [o[:4] for o in oofs])
    np.testing.assert_array_equal(oof2[fold == 2], oof[fold == 2])


@pytest.mark.parametrize("method", ["mean", "geomean", "rank_mean", "vote"])
def test_unfitted_blends_out_of_fold_equal_one_blend_of_all_rows(method):
    y, shifted, fold, oofs, tests = _two_views()
    oof, test, info = blend_out_of_fold(lambda: make_blend(method), oofs, y, fold, tests)
    whole = make_blend(method).fit(oofs, y)
    np.testing.assert_array_equal(oof, whole.predict_proba(oofs))
    np.testing.assert_array_equal(test, whole.predict_proba(tests))
    assert info["method"] == method and "folds" not in info
    oof2, _, _ = blend_out_of_fold(lambda: make_blend(method), oofs, shifted, fold, tests)
    np.testing.assert_array_equal(oof2, oof)


# --- registry and errors ---------------------------------------------------------------------


def test_registry_names_and_metric_passing():
    assert set(BLENDS) == {"mean", "geomean", "rank_mean", "weighted", "hill_climb", "vote"}
    assert make_blend("weighted", None, "accuracy").metric == "accuracy"
    assert make_blend("hill_climb", {"metric": "logloss"}, "accuracy").metric == "logloss"
    assert isinstance(make_blend("mean", None, "accuracy"), MeanBlend)  # metric not needed


def test_unknown_blend_method_lists_close_names():
    with pytest.raises(PodiumInputError, match=r"ensemble\.blends\.<name>\.method.*hill_climb"):
        make_blend("hill_climbing")
    with pytest.raises(PodiumInputError, match="geomean"):
        make_blend("geo_mean")


def test_unknown_and_bad_params_are_named():
    with pytest.raises(PodiumInputError, match=r"'max_round'.*Did you mean max_rounds"):
        make_blend("hill_climb", {"max_round": 3}, "logloss")
    with pytest.raises(PodiumInputError, match="'max_rounds'"):
        make_blend("weighted", {"max_rounds": 3}, "logloss")
    with pytest.raises(PodiumInputError, match="'metric'"):
        make_blend("mean", {"metric": "logloss"})
    with pytest.raises(PodiumInputError, match=r"params\.max_rounds"):
        make_blend("hill_climb", {"max_rounds": -1}, "logloss")
    with pytest.raises(PodiumInputError, match=r"params\.objective"):
        make_blend("weighted", {"objective": "fastest"}, "logloss")
    with pytest.raises(PodiumInputError, match=r"params\.metric"):
        make_blend("weighted")
    with pytest.raises(PodiumInputError, match="accuracy"):
        make_blend("weighted", None, "acuracy")
