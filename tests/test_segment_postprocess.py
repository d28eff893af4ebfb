"""Mask post-processing on synthetic OOF maps whose best threshold, min area and empty
decision are known by construction."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from podium.errors import PodiumInputError
from podium.tasks.segment.postprocess import (
    STAT_COLUMNS,
    EmptyMaskClassifier,
    apply_postprocess,
    apply_threshold_min_area,
    fit_postprocess,
    fit_postprocess_fold_by_fold,
    fit_threshold_min_area,
    mask_statistics,
    watershed_instances,
)


def _dice(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean per-image Dice, 1 where both are empty, written out independently."""
    scores = []
    for p, t in zip(pred != 0, true != 0, strict=True):
        total = p.sum() + t.sum()
        scores.append(1.0 if total == 0 else 2.0 * (p & t).sum() / total)
    return float(np.mean(scores))


def _synthetic_oof(n: int = 160, size: int = 64,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Truth: 1-3 discs (radius 5-11) per image, ~40% of images empty. Probability: a cone
    from ~0.95 at each disc's centre to ~0.35 at its rim (so 0.5 loses the rims), bright
    speckles of 1-9 pixels on every image (a min area removes them) and, on half the empty
    images, a flat faint ghost as large as a small disc (its low peak gives it away to the
    empty classifier; no threshold or min area removes it without hurting real discs)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    masks = np.zeros((n, size, size), dtype=np.uint8)
    probs = rng.uniform(0.0, 0.15, (n, size, size))
    empty = rng.random(n) < 0.4
    for i in range(n):
        if not empty[i]:
            for _ in range(rng.integers(1, 4)):
                r = rng.uniform(5, 11)
                cy, cx = rng.uniform(r, size - r, 2)
                d = np.hypot(yy - cy, xx - cx) / r
                masks[i][d <= 1] = 1
                probs[i] = np.maximum(probs[i], np.where(d <= 1, 0.95 - 0.6 * d, 0.0))
        elif rng.random() < 0.5:
            r = rng.uniform(5, 8)
            cy, cx = rng.uniform(r, size - r, 2)
            ghost = np.hypot(yy - cy, xx - cx) <= r
            probs[i] = np.maximum(probs[i], np.where(ghost, rng.uniform(0.4, 0.6), 0.0))
        for _ in range(rng.integers(1, 5)):
            cy, cx = rng.integers(2, size - 2, 2)
            h, w = rng.integers(1, 4, 2)
            probs[i, cy:cy + h, cx:cx + w] = rng.uniform(0.6, 0.95)
    probs = np.clip(probs + rng.normal(0, 0.03, probs.shape), 0, 1).astype(np.float32)
    return probs, masks, np.arange(n) % 4


@pytest.fixture(scope="module")
def oof() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return _synthetic_oof()


# ---------------------------------------------------------------------------- min area


def test_min_area_removes_small_components_and_keeps_large_ones() -> None:
    prob = np.zeros((32, 32), dtype=np.float32)
    prob[2:5, 2:5] = 0.9  # 9 pixels
    prob[10:16, 10:16] = 0.8  # 36 pixels
    prob[20, 20] = prob[21, 21] = 0.7  # 2 pixels, touching diagonally: one component
    prob[25:30, 25:30] = 0.4  # under the threshold
    out = apply_threshold_min_area(prob, 0.5, 10)
    assert out.dtype == np.uint8 and out.shape == prob.shape
    expected = np.zeros_like(out)
    expected[10:16, 10:16] = 1
    np.testing.assert_array_equal(out, expected)
    kept = apply_threshold_min_area(prob, 0.5, 2)
    assert kept[20, 20] == kept[21, 21] == 1 and kept[2:5, 2:5].all()
    np.testing.assert_array_equal(apply_threshold_min_area(prob, 0.3, 0), prob >= 0.3)
    stack = apply_threshold_min_area(np.stack([prob, prob.T]), 0.5, 10)
    np.testing.assert_array_equal(stack, np.stack([expected, expected.T]))


def test_bad_inputs_raise_podium_errors(oof: tuple) -> None:
    probs, masks, folds = oof
    with pytest.raises(PodiumInputError, match="in \\[0, 1\\]"):
        apply_threshold_min_area(probs * 255, 0.5, 0)
    with pytest.raises(PodiumInputError, match="min_area"):
        apply_threshold_min_area(probs, 0.5, -1)
    with pytest.raises(PodiumInputError, match="must match"):
        fit_threshold_min_area(probs, masks[:-1])
    with pytest.raises(PodiumInputError, match="fold labels"):
        fit_postprocess_fold_by_fold(probs, masks, folds[:-1])


# ---------------------------------------------------------------------------- fitting


def test_fitted_threshold_and_min_area_recover_the_construction(oof: tuple) -> None:
    probs, masks, _ = oof
    fitted = fit_threshold_min_area(probs, masks)
    assert set(fitted) == {"threshold", "min_area", "dice", "dice_default"}
    assert fitted["threshold"] < 0.4  # the rims sit at ~0.35
    assert 9 < fitted["min_area"] <= 300  # above the speckles
    assert fitted["dice_default"] == pytest.approx(
        _dice(apply_threshold_min_area(probs, 0.5, 0), masks))
    assert fitted["dice"] == pytest.approx(
        _dice(apply_threshold_min_area(probs, fitted["threshold"], fitted["min_area"]), masks))
    assert fitted["dice"] > fitted["dice_default"] + 0.2


def test_fold_by_fold_beats_the_default_by_a_clear_margin(oof: tuple) -> None:
    probs, masks, folds = oof
    out, report = fit_postprocess_fold_by_fold(probs, masks, folds)
    assert out.shape == masks.shape and out.dtype == np.uint8
    assert report["dice_before"] == pytest.approx(
        _dice(apply_threshold_min_area(probs, 0.5, 0), masks))
    assert report["dice_after"] == pytest.approx(_dice(out, masks))
    assert [r["fold"] for r in report["folds"]] == [0, 1, 2, 3]
    assert report["dice_after"] > report["dice_before"] + 0.3
    _, alone = fit_postprocess_fold_by_fold(probs, masks, folds, use_classifier=False)
    assert alone["dice_after"] > report["dice_before"] + 0.2
    assert report["dice_after"] > alone["dice_after"] + 0.05  # the empty decision adds
    assert all(r["empty_threshold"] is not None for r in report["folds"])
    json.dumps(report)


def test_fold_k_output_does_not_depend_on_fold_k_truth(oof: tuple) -> None:
    probs, masks, folds = oof
    held = folds == 2
    changed = masks.copy()
    changed[held] = 0  # every image of fold 2 now empty
    changed[np.flatnonzero(held)[::3], :20, :20] = 1
    out_a, report_a = fit_postprocess_fold_by_fold(probs, masks, folds)
    out_b, report_b = fit_postprocess_fold_by_fold(probs, changed, folds)
    np.testing.assert_array_equal(out_a[held], out_b[held])
    assert report_a["folds"][2]["empty_classifier"] == report_b["folds"][2]["empty_classifier"]
    # the other folds were fitted on fold 2, so the change must reach them
    assert not np.array_equal(out_a[~held], out_b[~held])


def test_fit_on_all_rows_applies_to_new_images_from_json(oof: tuple) -> None:
    probs, masks, _ = oof
    params = json.loads(json.dumps(fit_postprocess(probs, masks)))
    assert params["empty_threshold"] is not None and params["empty_classifier"] is not None
    assert params["dice"] >= params["dice_no_classifier"] >= params["dice_default"]
    test_probs, test_masks, _ = _synthetic_oof(n=80, seed=7)
    out = apply_postprocess(test_probs, params)
    assert out.shape == test_masks.shape and out.dtype == np.uint8
    default = _dice(apply_threshold_min_area(test_probs, 0.5, 0), test_masks)
    assert _dice(out, test_masks) > default + 0.3
    np.testing.assert_array_equal(apply_postprocess(test_probs[3], params), out[3])


# ---------------------------------------------------------------------------- empty masks


def test_mask_statistics_columns_shape_and_values() -> None:
    probs = np.zeros((3, 16, 16), dtype=np.float32)
    probs[1, 2:6, 2:6] = 0.8  # 16 pixels
    probs[1, 10:12, 10:13] = 0.6  # 6 pixels
    probs[2] = 0.35
    stats = mask_statistics(probs)
    assert list(stats.columns) == list(STAT_COLUMNS) and stats.shape == (3, len(STAT_COLUMNS))
    assert stats["max_prob"].tolist() == pytest.approx([0.0, 0.8, 0.35])
    assert stats["area_050"].tolist() == [0, 22, 0]
    assert stats["area_030"].tolist() == [0, 22, 256]
    assert stats["area_070"].tolist() == [0, 16, 0]
    assert stats["n_components_050"].tolist() == [0, 2, 0]
    assert stats["largest_component_050"].tolist() == [0, 16, 0]
    assert stats["frac_050"][1] == pytest.approx(22 / 256)
    assert stats["mean_prob_050"][1] == pytest.approx((16 * 0.8 + 6 * 0.6) / 22)
    assert stats["sum_prob"][2] == pytest.approx(0.35 * 256, rel=1e-5)
    assert len(mask_statistics(probs[1])) == 1


def test_empty_mask_classifier_separates_empty_images(oof: tuple) -> None:
    probs, masks, _ = oof
    is_empty = masks.reshape(len(masks), -1).max(axis=1) == 0
    model = EmptyMaskClassifier(seed=3).fit(mask_statistics(probs), is_empty)
    test_probs, test_masks, _ = _synthetic_oof(n=80, seed=11)
    test_empty = test_masks.reshape(len(test_masks), -1).max(axis=1) == 0
    test_stats = mask_statistics(test_probs)
    p_empty = model.predict_proba(test_stats)
    assert p_empty.shape == (80,) and ((p_empty >= 0) & (p_empty <= 1)).all()
    assert roc_auc_score(test_empty, p_empty) > 0.95
    again = EmptyMaskClassifier(seed=3).fit(mask_statistics(probs), is_empty)
    np.testing.assert_array_equal(again.predict_proba(test_stats), p_empty)
    loaded = EmptyMaskClassifier.from_params(json.loads(json.dumps(model.fitted_params())))
    np.testing.assert_allclose(loaded.predict_proba(test_stats), p_empty)
    with pytest.raises(PodiumInputError, match="lack the columns"):
        model.predict_proba(test_stats.drop(columns="max_prob"))


def test_empty_mask_classifier_fitted_on_one_class_predicts_it() -> None:
    stats = mask_statistics(np.random.default_rng(0).random((6, 8, 8)))
    none_empty = EmptyMaskClassifier().fit(stats, np.zeros(6, dtype=bool))
    all_empty = EmptyMaskClassifier().fit(stats, np.ones(6, dtype=bool))
    np.testing.assert_array_equal(none_empty.predict_proba(stats), np.zeros(6))
    np.testing.assert_array_equal(all_empty.predict_proba(stats), np.ones(6))


# ---------------------------------------------------------------------------- instances


def _discs(centres: list[tuple[float, float]], radius: float, size: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    inside = np.zeros((size, size), dtype=bool)
    for cy, cx in centres:
        inside |= np.hypot(yy - cy, xx - cx) <= radius
    return np.where(inside, 0.9, 0.05).astype(np.float32)


def test_watershed_splits_two_touching_discs_and_keeps_one_disc_whole() -> None:
    prob = _discs([(32, 20), (32, 38)], radius=10)  # overlapping by 2 px: one component
    labels = watershed_instances(prob)
    assert labels.dtype == np.int32 and labels.shape == prob.shape
    assert sorted(np.unique(labels).tolist()) == [0, 1, 2]
    np.testing.assert_array_equal(labels > 0, prob >= 0.5)
    assert labels[32, 20] != labels[32, 38]
    areas = np.bincount(labels.ravel())[1:]
    assert abs(int(areas[0]) - int(areas[1])) < 0.1 * areas.sum()
    single = watershed_instances(_discs([(30, 30)], radius=12))
    assert sorted(np.unique(single).tolist()) == [0, 1]


def test_watershed_min_area_and_core_markers() -> None:
    prob = _discs([(32, 20), (32, 38)], radius=10)
    prob[3:5, 3:5] = 0.9  # a 4-pixel speck
    assert watershed_instances(prob).max() == 3
    assert watershed_instances(prob, min_area=10).max() == 2
    yy, xx = np.mgrid[:64, :64]
    for cy, cx in [(32, 20), (32, 38)]:
        prob[np.hypot(yy - cy, xx - cx) <= 4] = 0.99
    assert watershed_instances(prob, core_threshold=0.95, min_area=10).max() == 2


def test_a_fit_that_barely_beats_the_defaults_keeps_them():
    """Nearly perfect probabilities: any fitted threshold wins by noise, so the defaults stay
    (and min_gain=0 shows the fit would otherwise move)."""
    rng = np.random.default_rng(3)
    masks = np.zeros((40, 32, 32), dtype=np.uint8)
    for i in range(0, 40, 2):
        masks[i, 8:20, 10:22] = 1
    probs = np.clip(masks * 0.9 + 0.05 + rng.normal(0, 0.02, masks.shape), 0, 1)
    probs[0, 8, 10:22] = 0.42  # an edge row the default threshold misses
    kept = fit_postprocess(probs, masks, use_classifier=False)
    assert kept["kept_defaults"] and kept["threshold"] == 0.5 and kept["min_area"] == 0
    moved = fit_postprocess(probs, masks, use_classifier=False, min_gain=0.0)
    assert not moved["kept_defaults"] and moved["dice"] > moved["dice_default"]


def test_fit_all_is_fit_postprocess_from_the_same_tables(oof: tuple) -> None:
    probs, masks, folds = oof
    out, report = fit_postprocess_fold_by_fold(probs, masks, folds, fit_all=True)
    plain_out, plain = fit_postprocess_fold_by_fold(probs, masks, folds)
    assert np.array_equal(out, plain_out) and "fitted" not in plain
    assert report.pop("fitted") == fit_postprocess(probs, masks, folds=folds)
    assert report == plain
