"""The metric registry: known values, directions and lookups by config name."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score, log_loss, roc_auc_score

from podium.errors import PodiumInputError
from podium.metrics import (
    METRICS,
    LabelSpace,
    NonFinitePredictions,
    check_metric_for_task,
    get_metric,
)


def one_hot(indices: list[int], n_classes: int) -> np.ndarray:
    return np.eye(n_classes)[indices]


def test_registry_names_and_directions() -> None:
    directions = {name: metric.greater_is_better for name, metric in METRICS.items()}
    assert directions == {
        "accuracy": True, "logloss": False, "auc": True, "f1_macro": True, "f1_micro": True,
        "qwk": True, "rmse": False, "mae": False, "dice": True, "iou": True, "instance_map": True,
        "f1_samples": True, "f2_macro": True, "f2_micro": True, "f2_samples": True,
    }
    for name, metric in METRICS.items():
        assert metric.name == name
        assert get_metric(name) is metric


@pytest.mark.parametrize(("name", "perfect"), [
    ("accuracy", 1.0), ("logloss", 0.0), ("auc", 1.0), ("f1_macro", 1.0), ("f1_micro", 1.0),
    ("qwk", 1.0),
])
def test_perfect_predictions_score_the_best_value(name: str, perfect: float) -> None:
    y = np.array([0, 1, 2, 2, 1, 0])
    assert get_metric(name)(y, one_hot(y.tolist(), 3)) == pytest.approx(perfect, abs=1e-9)


def test_accuracy_uses_argmax() -> None:
    y = np.array([0, 1, 2, 1])
    proba = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.1, 0.5, 0.4], [0.3, 0.4, 0.3]])
    assert get_metric("accuracy")(y, proba) == pytest.approx(0.75)


def test_accepts_lists() -> None:
    assert get_metric("accuracy")([1, 0], [[0.2, 0.8], [0.9, 0.1]]) == 1.0


def test_logloss_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(4), size=20)
    y = rng.integers(0, 4, size=20)
    expected = log_loss(y, proba, labels=[0, 1, 2, 3])
    assert get_metric("logloss")(y, proba) == pytest.approx(expected, rel=1e-9)


def test_logloss_known_value_and_zero_probability_is_finite() -> None:
    metric = get_metric("logloss")
    y = np.array([0, 1])
    assert metric(y, [[0.5, 0.5], [0.25, 0.75]]) == pytest.approx(
        -(math.log(0.5) + math.log(0.75)) / 2
    )
    worst = metric(np.array([0]), [[0.0, 1.0]])
    assert math.isfinite(worst)
    assert worst == pytest.approx(-math.log(1e-15), rel=1e-3)


def test_logloss_class_absent_from_truth() -> None:
    # Class 2 never occurs in y; the probability matrix still defines 3 classes.
    y = np.array([0, 1, 0])
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1]])
    expected = -(math.log(0.7) + math.log(0.8) + math.log(0.6)) / 3
    assert get_metric("logloss")(y, proba) == pytest.approx(expected)


def test_auc_binary_known_value() -> None:
    y = np.array([0, 0, 1, 1])
    p1 = np.array([0.1, 0.4, 0.35, 0.8])
    proba = np.column_stack([1 - p1, p1])
    assert get_metric("auc")(y, proba) == pytest.approx(0.75)


def test_auc_multiclass_matches_sklearn_ovr() -> None:
    rng = np.random.default_rng(1)
    y = np.tile(np.arange(3), 10)
    proba = rng.dirichlet(np.ones(3), size=30)
    proba[np.arange(30), y] += 0.3  # some signal, not perfect
    proba /= proba.sum(axis=1, keepdims=True)
    expected = roc_auc_score(y, proba, multi_class="ovr")
    score = get_metric("auc")(y, proba)
    assert score == pytest.approx(expected)
    assert 0.5 < score < 1.0


def test_f1_macro_known_value() -> None:
    # Predictions 0, 0, 1, 1 for truth 0, 1, 1, 1: class 0 F1 = 2/3, class 1 F1 = 0.8.
    y = np.array([0, 1, 1, 1])
    proba = one_hot([0, 0, 1, 1], 2)
    assert get_metric("f1_macro")(y, proba) == pytest.approx((2 / 3 + 0.8) / 2)


def test_qwk_known_value_and_distance_weighting() -> None:
    qwk = get_metric("qwk")
    # Hand computed: observed weighted disagreement 1/4, expected 5/4, kappa 1 - 0.2 = 0.8.
    assert qwk(np.array([0, 1, 2]), one_hot([0, 2, 2], 3)) == pytest.approx(0.8)
    y = np.array([0, 1, 2, 3, 4] * 2)
    near = one_hot([0, 1, 2, 3, 3] * 2, 5)  # one class off
    far = one_hot([0, 1, 2, 3, 0] * 2, 5)  # four classes off
    assert qwk(y, near) > qwk(y, far)


def test_is_better_follows_direction() -> None:
    accuracy, logloss = get_metric("accuracy"), get_metric("logloss")
    assert accuracy.is_better(0.9, 0.8)
    assert not accuracy.is_better(0.8, 0.9)
    assert logloss.is_better(0.2, 0.3)
    assert not logloss.is_better(0.3, 0.2)
    assert not accuracy.is_better(0.5, 0.5)
    assert not logloss.is_better(0.5, 0.5)


def test_is_better_with_nan() -> None:
    for metric in METRICS.values():
        assert metric.is_better(0.1, float("nan"))
        assert not metric.is_better(float("nan"), float("nan"))
        assert not metric.is_better(float("nan"), 0.1)


def test_unknown_metric_suggests_the_close_name() -> None:
    with pytest.raises(PodiumInputError, match=r"Did you mean accuracy") as info:
        get_metric("acuracy")
    message = str(info.value)
    assert "'acuracy'" in message
    assert "competition.metric" in message


MULTILABEL_Y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])


@pytest.mark.parametrize(("name", "perfect"), [
    ("accuracy", 1.0), ("logloss", 0.0), ("auc", 1.0), ("f1_macro", 1.0), ("f1_micro", 1.0),
])
def test_multilabel_perfect_predictions(name: str, perfect: float) -> None:
    proba = MULTILABEL_Y.astype(float)
    assert get_metric(name)(MULTILABEL_Y, proba) == pytest.approx(perfect, abs=1e-9)


def test_multilabel_known_values() -> None:
    """One row wrong on one class: hand-computed F1, exact-set accuracy, BCE and AUC."""
    proba = np.array([[0.9, 0.1, 0.8], [0.2, 0.7, 0.6], [0.6, 0.9, 0.1], [0.3, 0.2, 0.9]])
    # predicted at 0.5: row 1 adds class 2 (a false positive); everything else is right
    assert get_metric("accuracy")(MULTILABEL_Y, proba) == pytest.approx(3 / 4)
    # class 2: tp 2, fp 1, fn 0 -> F1 0.8; classes 0 and 1 perfect
    assert get_metric("f1_macro")(MULTILABEL_Y, proba) == pytest.approx((1 + 1 + 0.8) / 3)
    assert get_metric("f1_micro")(MULTILABEL_Y, proba) == pytest.approx(2 * 6 / (2 * 6 + 1))
    expected_bce = -np.mean(MULTILABEL_Y * np.log(proba) + (1 - MULTILABEL_Y) * np.log(1 - proba))
    assert get_metric("logloss")(MULTILABEL_Y, proba) == pytest.approx(expected_bce)
    per_class = [roc_auc_score(MULTILABEL_Y[:, c], proba[:, c]) for c in range(3)]
    assert get_metric("auc")(MULTILABEL_Y, proba) == pytest.approx(np.mean(per_class))


def test_multilabel_auc_skips_classes_without_both_outcomes() -> None:
    y = np.array([[1, 0], [1, 1], [1, 0]])  # class 0 is always present: no AUC for it
    proba = np.array([[0.2, 0.1], [0.3, 0.9], [0.1, 0.4]])
    assert get_metric("auc")(y, proba) == pytest.approx(1.0)


def test_value_metrics_and_ordinal_rounding() -> None:
    y = np.array([0.0, 1.0, 2.0, 4.0])
    pred = np.array([[0.2], [1.4], [2.6], [3.0]])
    grades = LabelSpace.from_grades([0, 4])
    assert get_metric("rmse")(y, pred) == pytest.approx(np.sqrt((0.04 + 0.16 + 0.36 + 1) / 4))
    assert get_metric("mae")(y, pred) == pytest.approx((0.2 + 0.4 + 0.6 + 1.0) / 4)
    # grades: rint -> 0, 1, 3, 3 (clipped to the competition's range 0-4): two of four exact
    assert get_metric("accuracy")(y, pred, grades) == pytest.approx(0.5)
    assert get_metric("qwk")(y, pred, grades) == pytest.approx(
        cohen_kappa_score([0, 1, 2, 4], [0, 1, 3, 3], weights="quadratic"))
    assert get_metric("qwk")(y, np.array([[-3.0], [1.0], [2.0], [9.0]]), grades
                             ) == pytest.approx(1.0)


def test_grades_come_from_the_label_space_never_from_the_truth() -> None:
    """The issue's hand cases: a fold without the top grade hides no over-prediction, and
    QWK weighs a disagreement by the grades' distance, not their rank among those present."""
    y, pred = np.array([0.0, 1.0, 2.0, 2.0]), np.array([[0.0], [1.0], [3.0], [4.0]])
    assert get_metric("accuracy")(y, pred, LabelSpace.from_grades(range(5))
                                  ) == pytest.approx(0.5)
    assert get_metric("qwk")(y, pred, LabelSpace.from_grades(range(5))) == pytest.approx(
        cohen_kappa_score([0, 1, 2, 2], [0, 1, 3, 4], weights="quadratic"))
    qwk = get_metric("qwk")(np.array([0.0, 1.0, 3.0, 3.0]), np.array([[0.0], [3.0], [3.0], [1.0]]),
                            LabelSpace.from_grades([0, 3]))
    assert qwk == pytest.approx(0.407, abs=1e-3)
    with pytest.raises(PodiumInputError, match="no grades"):
        get_metric("qwk")(y, pred)


def test_non_finite_predictions_are_refused() -> None:
    proba = np.array([[0.2, 0.8], [np.nan, 0.5]])
    for name in ("accuracy", "logloss", "auc", "f1_macro", "qwk"):
        with pytest.raises(NonFinitePredictions, match="1 of 2 predicted rows"):
            get_metric(name)(np.array([1, 0]), proba)
    with pytest.raises(NonFinitePredictions, match="NaN or inf"):
        get_metric("rmse")(np.array([1.0]), np.array([[np.inf]]))


def test_metric_must_fit_the_task() -> None:
    from podium.metrics import check_metric_for_task

    check_metric_for_task("qwk", "ordinal")
    with pytest.raises(PodiumInputError, match="does not score regression.*mae, rmse"):
        check_metric_for_task("accuracy", "regression")


def test_mask_metrics_score_probability_maps_at_one_half_and_masks_as_they_are():
    truth = np.zeros((2, 4, 4), dtype=np.uint8)
    truth[0, :2] = 1  # image 1 is empty
    probs = truth * 0.7 + 0.1  # every pixel on the right side of 0.5
    assert get_metric("dice")(truth, probs) == 1.0
    half = truth.copy()
    half[0, 1] = 0  # 4 of 8 pixels found: Dice 2*4/(4+8)
    assert np.isclose(get_metric("dice")(truth, half), (2 * 4 / 12 + 1.0) / 2)
    assert np.isclose(get_metric("iou")(truth, half), (4 / 8 + 1.0) / 2)
    check_metric_for_task("dice", "segmentation")
    with pytest.raises(PodiumInputError, match="does not score segmentation"):
        check_metric_for_task("accuracy", "segmentation")
    # entries are fitted and ranked by Dice, so an IoU competition would be ranked by another
    # metric than its own: refused, naming the ones that fit
    with pytest.raises(PodiumInputError, match="'iou' does not score segmentation.*dice"):
        check_metric_for_task("iou", "segmentation")


def test_instance_map_scores_label_maps_through_the_registry() -> None:
    truth = np.zeros((2, 8, 8), dtype=np.int32)
    truth[0, 1:4, 1:4], truth[0, 5:8, 5:8] = 1, 2
    metric = get_metric("instance_map")
    assert metric.greater_is_better and metric(truth, truth) == pytest.approx(1.0)
    merged = (truth > 0).astype(np.int32)  # both objects as one instance: no match
    assert metric(truth, merged) == pytest.approx(0.5)  # the empty second image still scores 1
    with pytest.raises(PodiumInputError, match="does not score binary"):
        check_metric_for_task("instance_map", "binary")
