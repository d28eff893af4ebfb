"""Kaggle RLE round trips and error messages, and segmentation metrics on hand-checked cases."""

from __future__ import annotations

import time

import numpy as np
import pytest

from podium.errors import PodiumInputError
from podium.metrics.masks import (
    dice,
    instance_average_precision,
    iou,
    mean_dice,
    mean_dice_per_class,
    mean_instance_average_precision,
    mean_iou,
)
from podium.tasks.segment.rle import rle_decode, rle_encode

# --- RLE -------------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["F", "C"])
@pytest.mark.parametrize("shape", [(1, 1), (7, 7), (5, 13), (32, 9), (64, 64)])
def test_round_trip_random_masks(shape: tuple[int, int], order: str) -> None:
    rng = np.random.default_rng(sum(shape))
    for density in (0.1, 0.5, 0.9):
        mask = (rng.random(shape) < density).astype(np.uint8)
        decoded = rle_decode(rle_encode(mask, order), shape, order)
        assert decoded.dtype == np.uint8
        np.testing.assert_array_equal(decoded, mask)


@pytest.mark.parametrize("order", ["F", "C"])
def test_empty_and_full_masks(order: str) -> None:
    assert rle_encode(np.zeros((4, 6), dtype=bool), order) == ""
    assert rle_encode(np.ones((4, 6), dtype=bool), order) == "1 24"
    np.testing.assert_array_equal(rle_decode("1 24", (4, 6), order), np.ones((4, 6)))


def test_kaggle_documentation_example() -> None:
    # Kaggle's evaluation pages: "1 3 10 5" means pixels 1,2,3 and 10,11,12,13,14.
    # In a 5x4 mask numbered top to bottom, then left to right (order "F"), pixels 1-3 are
    # rows 0-2 of column 0, and pixels 10-14 are row 4 of column 1 and rows 0-3 of column 2.
    mask = np.zeros((5, 4), dtype=np.uint8)
    mask[0:3, 0] = 1
    mask[4, 1] = 1
    mask[0:4, 2] = 1
    assert rle_encode(mask, "F") == "1 3 10 5"
    np.testing.assert_array_equal(rle_decode("1 3 10 5", (5, 4), "F"), mask)
    # The same pixel numbers in row-major order fill the rows instead.
    row_major = np.zeros(20, dtype=np.uint8)
    row_major[[0, 1, 2, 9, 10, 11, 12, 13]] = 1
    np.testing.assert_array_equal(rle_decode("1 3 10 5", (5, 4), "C"), row_major.reshape(5, 4))


def test_orders_differ_by_transposition() -> None:
    mask = np.zeros((3, 5), dtype=np.uint8)
    mask[0, 1:4] = 1  # a horizontal bar: one run row-major, split column-major
    mask[2, 0] = 1
    # Row-major, pixel (r, c) is 5r + c + 1: the bar is 2-4, (2, 0) is 11.
    assert rle_encode(mask, "C") == "2 3 11 1"
    # Column-major, pixel (r, c) is 3c + r + 1: (2, 0) is 3 and (0, 1) is 4, one run;
    # then (0, 2) is 7 and (0, 3) is 10.
    assert rle_encode(mask, "F") == "3 2 7 1 10 1"
    assert rle_encode(mask, "F") != rle_encode(mask, "C")
    # Column-major numbering of a mask is row-major numbering of its transpose.
    assert rle_encode(mask, "F") == rle_encode(mask.T, "C")
    np.testing.assert_array_equal(rle_decode(rle_encode(mask, "C"), (5, 3), "F"), mask.T)


@pytest.mark.parametrize("empty", ["", "   ", "-1", " -1", None, float("nan"), -1])
def test_empty_spellings_decode_to_an_empty_mask(empty: object) -> None:
    decoded = rle_decode(empty, (3, 4))
    assert decoded.shape == (3, 4)
    assert not decoded.any()


@pytest.mark.parametrize(("rle", "message"), [
    ("1 3 10", "odd number of values"),
    ("1 3 x 5", r"token 3 \('x'\) is not an integer"),
    ("1 2.5", r"token 2 \('2.5'\) is not an integer"),
    ("0 3", "start is below 1"),
    ("1 3 -4 2", "start is below 1"),
    ("1 0", "run length must be positive"),
    ("1 3 6 -2", "run length must be positive"),
    ("18 5", "past the last pixel 20 of a 5x4 mask"),
    ("1 5 4 2", "overlaps the previous run"),
    ("10 2 1 3", "starts before the previous run"),
    ("1 99999999999999999999999", "too large"),
])
def test_bad_strings_name_the_problem(rle: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rle_decode(rle, (5, 4))


def test_bad_pair_is_located() -> None:
    with pytest.raises(ValueError, match=r"pair 2 \('4 2', tokens 3-4\)"):
        rle_decode("1 5 4 2", (5, 4))


def test_unknown_order_and_bad_input() -> None:
    with pytest.raises(PodiumInputError, match="unknown RLE pixel order 'X'"):
        rle_encode(np.ones((2, 2)), "X")
    with pytest.raises(ValueError, match="unknown RLE pixel order"):
        rle_decode("1 2", (2, 2), "row")
    with pytest.raises(ValueError, match="one 2-D mask"):
        rle_encode(np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="must be a string"):
        rle_decode(3.5, (2, 2))


def test_large_masks_are_fast() -> None:
    rng = np.random.default_rng(0)
    mask = np.zeros((1024, 1024), dtype=np.uint8)
    yy, xx = np.ogrid[:1024, :1024]
    for cy, cx, r in rng.integers(20, 1000, size=(40, 3)) % [1024, 1024, 80]:
        mask[(yy - cy) ** 2 + (xx - cx) ** 2 < r**2] = 1
    mask |= (rng.random(mask.shape) < 0.02).astype(np.uint8)  # ~20k speckle runs
    start = time.perf_counter()
    decoded = rle_decode(rle_encode(mask), mask.shape)
    assert time.perf_counter() - start < 2.0
    np.testing.assert_array_equal(decoded, mask)


# --- metrics ---------------------------------------------------------------------------------


def test_dice_and_iou_on_a_known_overlap() -> None:
    pred = np.zeros((4, 4), dtype=bool)
    pred[0, :] = True  # 4 pixels
    true = np.zeros((4, 4), dtype=bool)
    true[0, :] = True
    true[1, :2] = True  # 6 pixels, 4 of them shared
    assert dice(pred, true) == pytest.approx(2 * 4 / (4 + 6))  # 0.8
    assert iou(pred, true) == pytest.approx(4 / 6)
    assert dice(pred, ~true) == 0.0


def test_empty_masks_follow_the_kaggle_convention() -> None:
    empty = np.zeros((4, 4), dtype=np.uint8)
    full = np.ones((4, 4), dtype=np.uint8)
    assert dice(empty, empty) == 1.0
    assert iou(empty, empty) == 1.0
    assert dice(empty, empty, empty_score=0.0) == 0.0
    assert dice(empty, full) == 0.0
    assert iou(full, empty) == 0.0


def test_dice_is_a_function_of_iou() -> None:
    rng = np.random.default_rng(1)
    for _ in range(20):
        pred, true = rng.random((2, 9, 7)) < rng.random()
        if not (pred.any() or true.any()):
            continue
        j = iou(pred, true)
        assert dice(pred, true) == pytest.approx(2 * j / (1 + j))


def test_mean_metrics_average_per_image() -> None:
    pred = np.zeros((2, 4, 4), dtype=np.uint8)
    true = np.zeros((2, 4, 4), dtype=np.uint8)
    pred[0, 0, :] = 1
    true[0, 0, :2] = 1  # image 0: dice 2*2/6 = 2/3, iou 2/4; image 1: both empty -> 1
    assert mean_dice(pred, true) == pytest.approx((2 / 3 + 1) / 2)
    assert mean_iou(pred, true) == pytest.approx((0.5 + 1) / 2)
    assert mean_dice(list(pred), list(true), empty_score=0.0) == pytest.approx(1 / 3)
    masks = [np.ones((2, 3)), np.ones((5, 5))]  # lists may mix image sizes
    assert mean_dice(masks, masks) == 1.0
    with pytest.raises(ValueError, match="2 predicted masks but 1 true"):
        mean_dice(pred, true[:1])
    with pytest.raises(ValueError, match="shape"):
        mean_iou([np.ones((2, 2))], [np.ones((3, 3))])


def test_mean_dice_per_class() -> None:
    true = np.array([[[1, 1, 2, 0]], [[0, 0, 0, 0]]])
    pred = np.array([[[1, 0, 2, 2]], [[0, 0, 0, 2]]])
    # image 0: class 1 dice 2*1/3, class 2 dice 2*1/3, class 3 both empty 1
    # image 1: class 1 both empty 1, class 2 dice 0, class 3 both empty 1
    expected = np.mean([2 / 3, 2 / 3, 1.0, 1.0, 0.0, 1.0])
    assert mean_dice_per_class(pred, true, n_classes=3) == pytest.approx(expected)
    with pytest.raises(ValueError, match=r"class ids 0..2; expected 0..1"):
        mean_dice_per_class(pred, true, n_classes=1)


def _boxes(shape: tuple[int, int], *boxes: tuple[int, int, int, int]) -> np.ndarray:
    labels = np.zeros(shape, dtype=np.int32)
    for label, (r0, r1, c0, c1) in enumerate(boxes, start=1):
        labels[r0:r1, c0:c1] = label
    return labels


def test_instance_ap_one_matched_at_iou_06_and_one_missed() -> None:
    # True: A = rows 0-1 x cols 0-4 (10 px), B = rows 6-7 x cols 6-7 (4 px).
    # Pred: one object covering 6 px of A and nothing else -> IoU(A) = 6/10 = 0.6; B missed.
    # Thresholds 0.50, 0.55: 0.6 > t, TP=1 FP=0 FN=1 -> 1/2 each.
    # Thresholds 0.60 ... 0.95 (8 of them): 0.6 > t fails (strict), TP=0 FP=1 FN=2 -> 0.
    # Mean over the 10 thresholds = (0.5 + 0.5) / 10 = 0.1.
    true = _boxes((8, 8), (0, 2, 0, 5), (6, 8, 6, 8))
    pred = _boxes((8, 8), (0, 2, 0, 3))
    assert instance_average_precision(pred, true) == pytest.approx(0.1)


def test_instance_ap_perfect_empty_and_label_values() -> None:
    true = _boxes((8, 8), (0, 2, 0, 2), (4, 6, 4, 6))
    assert instance_average_precision(true, true) == 1.0
    assert instance_average_precision(true * 7, true) == 1.0  # label values do not matter
    assert instance_average_precision(np.zeros_like(true), np.zeros_like(true)) == 1.0
    assert instance_average_precision(np.zeros_like(true), true) == 0.0
    assert instance_average_precision(true, np.zeros_like(true)) == 0.0
    # One extra false positive: at every threshold TP=2 FP=1 FN=0 -> 2/3.
    extra = _boxes((8, 8), (0, 2, 0, 2), (4, 6, 4, 6), (7, 8, 0, 1))
    assert instance_average_precision(extra, true) == pytest.approx(2 / 3)
    assert mean_instance_average_precision([extra, true], [true, true]) == pytest.approx(5 / 6)


def test_instance_ap_matches_one_to_one_below_half() -> None:
    # Two predictions each cover half of one true object: at t=0.3 both exceed it
    # (IoU 0.5), but only one can be matched: TP=1 FP=1 FN=0 -> 1/2.
    true = _boxes((2, 4), (0, 2, 0, 4))
    pred = _boxes((2, 4), (0, 2, 0, 2), (0, 2, 2, 4))
    assert instance_average_precision(pred, true, thresholds=[0.3]) == pytest.approx(0.5)


def test_instance_ap_rejects_float_labels() -> None:
    with pytest.raises(ValueError, match="integer instance label map"):
        instance_average_precision(np.zeros((2, 2)), np.zeros((2, 2), dtype=int))
