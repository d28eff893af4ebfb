"""Podium's mask metrics (dice, iou, instance_map) against the competitions' published
definitions, re-derived here without podium's helpers.

Dice and IoU (SIIM-ACR Pneumothorax, Severstal, Understanding Clouds): per (image, class)
pair, a probability map is the mask ``p >= 0.5`` (0/1 and boolean masks are themselves),
Dice 2|P∩T| / (|P| + |T|), IoU |P∩T| / |P∪T|, a pair empty in both scores 1, the mean over
every pair. DSB 2018: per image, at each IoU threshold t in 0.50, 0.55, ..., 0.95 a predicted
and a true object match when IoU > t (compared exactly, in integers: IoU equal to t is no
match), the image scores TP / (TP + FP + FN) averaged over the thresholds (1 when both maps
are empty), the leaderboard the mean over images. Each metric runs on ``N_DRAWS`` seeded
draws, through the registry as CV calls it.
"""

from __future__ import annotations

import numpy as np
import pytest

from podium.metrics import get_metric
from podium.metrics.masks import mean_instance_average_precision

N_DRAWS = 1000
TOL = 1e-9


# --------------------------------------------------------------------------------------------
# References


def _pairs(masks: np.ndarray) -> np.ndarray:
    """``N x K x H x W`` or ``N x H x W`` as one flat 0/1 row per (image, class) pair."""
    masks = np.asarray(masks, dtype=np.float64)
    return (masks.reshape(masks.shape[0] * masks.shape[1], -1) if masks.ndim == 4
            else masks.reshape(masks.shape[0], -1))


def reference_dice(truth: np.ndarray, maps: np.ndarray) -> float:
    pred, true = _pairs(maps) >= 0.5, _pairs(truth) >= 0.5
    inter = (pred & true).sum(axis=1)
    total = pred.sum(axis=1) + true.sum(axis=1)
    return float(np.mean(np.where(total == 0, 1.0, 2 * inter / np.maximum(total, 1))))


def reference_iou(truth: np.ndarray, maps: np.ndarray) -> float:
    pred, true = _pairs(maps) >= 0.5, _pairs(truth) >= 0.5
    inter = (pred & true).sum(axis=1)
    union = (pred | true).sum(axis=1)
    return float(np.mean(np.where(union == 0, 1.0, inter / np.maximum(union, 1))))


THRESHOLDS_PERCENT = range(50, 100, 5)  # 0.50, 0.55, ..., 0.95


def dsb_image_score(true: np.ndarray, pred: np.ndarray) -> float:
    """One image of DSB 2018: objects are the nonzero labels of each map."""
    true_ids = [v for v in np.unique(true) if v != 0]
    pred_ids = [v for v in np.unique(pred) if v != 0]
    if not true_ids and not pred_ids:
        return 1.0
    inter = np.array([[int(np.sum((pred == p) & (true == t))) for t in true_ids]
                      for p in pred_ids], dtype=np.int64).reshape(len(pred_ids), len(true_ids))
    area_p = np.array([int(np.sum(pred == p)) for p in pred_ids], dtype=np.int64)
    area_t = np.array([int(np.sum(true == t)) for t in true_ids], dtype=np.int64)
    union = area_p[:, None] + area_t[None, :] - inter
    scores = []
    for percent in THRESHOLDS_PERCENT:
        matched = inter * 100 > percent * union  # IoU > t, exactly
        # above IoU 0.5 an object overlaps at most one object of the other map that much
        assert (matched.sum(axis=0) <= 1).all() and (matched.sum(axis=1) <= 1).all()
        tp = int(matched.sum())
        fp, fn = len(pred_ids) - tp, len(true_ids) - tp
        scores.append(tp / (tp + fp + fn))
    return float(np.mean(scores))


def reference_instance_map(truth: np.ndarray, maps: np.ndarray) -> float:
    return float(np.mean([dsb_image_score(t, p)
                          for t, p in zip(truth, np.rint(maps).astype(np.int64), strict=True)]))


REFERENCES = {"dice": (reference_dice,), "iou": (reference_iou,),
              "instance_map": (reference_instance_map,)}
"""Each mask metric's reference (test_reference_registry.py holds the keys to the registry)."""


# --------------------------------------------------------------------------------------------
# Draws


def draw_masks(rng: np.random.Generator, i: int) -> tuple[np.ndarray, np.ndarray]:
    """0/1 truth and predictions of ``N x H x W`` or ``N x K x H x W``: probability maps
    (some exactly at and either side of 0.5), 0/1 uint8 or boolean masks; empty pairs in
    truth, in predictions and in both; perfect and constant predictions."""
    n, size = int(rng.integers(1, 4)), int(rng.integers(2, 9))
    shape = (n, size, size) if i % 4 == 0 else (n, int(rng.integers(1, 4)), size, size)
    truth = (rng.random(shape) < rng.choice([0.05, 0.2, 0.5])).astype(np.uint8)
    pairs = truth.reshape(-1, size, size)
    pairs[rng.random(len(pairs)) < 0.4] = 0  # empty pairs in truth
    kind = i % 5
    if kind == 0:
        maps = rng.random(shape).astype(np.float32 if i % 2 else np.float64)
    elif kind == 1:  # the cut itself: 0.5 is foreground, just under it is not
        maps = rng.choice([0.0, 0.25, np.nextafter(0.5, 0.0), 0.5, np.nextafter(0.5, 1.0), 1.0],
                          size=shape)
    elif kind == 2:
        maps = np.clip(truth * rng.uniform(0.3, 1.0) + rng.normal(0, 0.25, shape), 0, 1)
    elif kind == 3:
        maps = (rng.random(shape) < 0.3).astype(np.uint8)
    else:
        maps = (truth.astype(bool) ^ (rng.random(shape) < 0.1))
    if i % 7 == 3:
        maps = np.zeros(shape, dtype=np.float64)  # predicts nothing
    elif i % 11 == 5:
        maps = truth.astype(np.float64)  # perfect
    elif i % 13 == 6:
        maps = np.full(shape, rng.choice([0.49, 0.5, 0.9]))  # constant
    if i % 3 == 0:  # pairs empty in predictions
        flat = maps.reshape(-1, size, size)
        flat[rng.random(len(flat)) < 0.5] = 0
    return truth, maps


def _rectangles(rng: np.random.Generator, shape: tuple[int, int], n: int, top: int
                ) -> list[tuple[slice, slice]]:
    h, w = shape
    boxes = []
    for _ in range(n):
        y0, x0 = int(rng.integers(top, h - 1)), int(rng.integers(0, w - 1))
        boxes.append((slice(y0, int(rng.integers(y0 + 1, min(h, y0 + 6) + 1))),
                      slice(x0, int(rng.integers(x0 + 1, min(w, x0 + 6) + 1)))))
    return boxes


def draw_instances(rng: np.random.Generator, i: int) -> tuple[np.ndarray, np.ndarray]:
    """Instance label maps (labels need not be 1..n; later objects overlap earlier ones)
    and predictions: relabelled copies, shifted, grown, dropped and invented objects,
    merged objects, nothing; row 0 may hold a strip whose IoU with its truth is exactly
    one of the thresholds (k/20)."""
    n, h, w = int(rng.integers(1, 4)), int(rng.integers(6, 15)), 20
    truth = np.zeros((n, h, w), dtype=np.int32)
    pred = np.zeros((n, h, w), dtype=np.int32)
    for image in range(n):
        boxes = _rectangles(rng, (h, w), int(rng.integers(0, 6)), top=2)
        labels = rng.choice(np.arange(1, 500), size=len(boxes) + 2, replace=False)
        for box, label in zip(boxes, labels, strict=False):
            truth[image][box] = label
        mode = (i + image) % 6
        if mode == 0:  # the same objects, other labels
            for label in np.unique(truth[image])[1:]:
                pred[image][truth[image] == label] = label + 1000
        for b, (ys, xs) in enumerate(boxes):
            if mode in (0, 5) or rng.random() < 0.15:
                continue  # mode 5: nothing found; else some objects missed
            dy, dx = (int(v) for v in rng.integers(-1, 2, size=2))
            grow = int(rng.integers(0, 2))
            py = slice(max(0, ys.start + dy), min(h, ys.stop + dy + grow))
            px = slice(max(0, xs.start + dx), min(w, xs.stop + dx + grow))
            pred[image][py, px] = 7 if mode == 4 else labels[b] + 2000  # mode 4: one blob
        if mode in (1, 3):
            for ys, xs in _rectangles(rng, (h, w), int(rng.integers(1, 3)), top=2):
                pred[image][ys, xs] = int(rng.integers(3000, 3100))  # invented
        if (i + image) % 4 == 0:  # a strip in row 0 at IoU k/20 exactly (k = 10..20)
            part = np.arange(w) < int(rng.integers(10, 21))
            whole = np.ones(w, dtype=bool)
            true_strip, pred_strip = (whole, part) if rng.random() < 0.5 else (part, whole)
            truth[image, 0], pred[image, 0] = 900 * true_strip, 901 * pred_strip
    return truth, pred


@pytest.mark.parametrize("name", ["dice", "iou"])
def test_pair_metric_agrees_with_the_definition_on_random_draws(name: str) -> None:
    rng = np.random.default_rng({"dice": 2019, "iou": 2020}[name])
    metric, (reference,) = get_metric(name), REFERENCES[name]
    failures, both_empty = [], 0
    for i in range(N_DRAWS):
        truth, maps = draw_masks(rng, i)
        got, want = metric(truth, maps), reference(truth, maps)
        both_empty += bool((_pairs(truth).sum(1) + (_pairs(maps) >= 0.5).sum(1) == 0).any())
        if not abs(got - want) <= TOL:
            failures.append(f"draw {i}: podium {got!r}, reference {want!r}, shape "
                            f"{truth.shape}, maps {maps.dtype}")
    assert not failures, f"{len(failures)} disagreements; first:\n" + "\n".join(failures[:3])
    assert both_empty > 100


def test_instance_map_agrees_with_dsb_2018_on_random_draws() -> None:
    rng = np.random.default_rng(2018)
    metric = get_metric("instance_map")
    failures, at_threshold, seen = [], 0, set()
    for i in range(N_DRAWS):
        truth, pred = draw_instances(rng, i)
        maps = pred.astype(np.float64) if i % 2 else pred  # the registry hands floats over
        got, want = metric(truth, maps), reference_instance_map(truth, maps)
        seen.add(round(want, 6))
        at_threshold += bool(((truth[:, 0] == 900).any(axis=1)).any())
        if not abs(got - want) <= TOL:
            failures.append(f"draw {i}: podium {got!r}, reference {want!r}\n"
                            f"  truth={truth.tolist()}\n  pred={pred.tolist()}")
    assert not failures, f"{len(failures)} disagreements; first:\n" + "\n".join(failures[:2])
    assert at_threshold > 200 and len(seen) > 100  # many distinct scores, not just 0 and 1


# --------------------------------------------------------------------------------------------
# Hand cases


def test_probability_maps_are_cut_at_one_half() -> None:
    truth = np.array([[[1, 1], [0, 0]], [[0, 0], [0, 0]]], dtype=np.uint8)
    maps = np.array([[[0.5, np.nextafter(0.5, 0)], [0.2, 0.0]], [[0.1, 0.0], [0.0, 0.49]]])
    # image 1: P = {0.5 pixel}, T = 2 pixels: Dice 2/3, IoU 1/2; image 2 empty in both: 1
    assert get_metric("dice")(truth, maps) == pytest.approx((2 / 3 + 1) / 2, abs=TOL)
    assert get_metric("iou")(truth, maps) == pytest.approx((1 / 2 + 1) / 2, abs=TOL)
    # the same pairs as N x K x H x W (one image, two classes)
    assert get_metric("dice")(truth[None], maps[None]) == pytest.approx((2 / 3 + 1) / 2,
                                                                         abs=TOL)


@pytest.mark.parametrize(("k", "expected"), [
    (10, 0.0), (11, 0.1), (12, 0.2), (13, 0.3), (15, 0.5), (19, 0.9), (20, 1.0)])
def test_dsb_iou_equal_to_a_threshold_is_no_match(k: int, expected: float) -> None:
    """A 20-pixel object found by its first k pixels: IoU k/20 matches every threshold
    strictly below it, so 11/20 = 0.55 matches only 0.50 and scores 1/10."""
    truth = np.zeros((1, 3, 20), dtype=np.int32)
    truth[0, 1] = 5
    pred = np.zeros_like(truth)
    pred[0, 1, :k] = 9
    assert dsb_image_score(truth[0], pred[0]) == pytest.approx(expected, abs=TOL)
    assert get_metric("instance_map")(truth, pred) == pytest.approx(expected, abs=TOL)


def test_dsb_empty_images() -> None:
    empty = np.zeros((4, 4), dtype=np.int32)
    one = empty.copy()
    one[1:3, 1:3] = 1
    assert mean_instance_average_precision([empty], [empty]) == 1.0  # both empty
    assert mean_instance_average_precision([empty], [one]) == 0.0  # missed: FN only
    assert mean_instance_average_precision([one], [empty]) == 0.0  # invented: FP only
    # images of different sizes, averaged image by image: found (1) and missed (0)
    big = np.zeros((6, 9), dtype=np.int32)
    big[:2, :2] = 3
    assert mean_instance_average_precision([one * 4, np.zeros_like(big)],
                                           [one, big]) == pytest.approx(0.5, abs=TOL)
