"""DSB-style instances: RLE rows <-> label images, label resizing, and the watershed fitted on
synthetic OOF maps of touching discs (where one instance per connected component fails)."""

from __future__ import annotations

import copy
from typing import Any

import cv2
import numpy as np
import pytest
from scipy import ndimage as ndi

from podium.errors import PodiumInputError
from podium.metrics.masks import instance_average_precision, mean_instance_average_precision
from podium.tasks.segment.instances import (
    DEFAULT_WATERSHED,
    _Table,
    apply_watershed,
    fit_watershed,
    fit_watershed_fold_by_fold,
    instance_labels,
    instance_rows,
    resize_labels,
)
from podium.tasks.segment.rle import rle_decode, rle_encode

SIZE = 64


def _touching_discs(n: int, seed: int = 0, scale: float = 1.0,
                    empty_every: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per image two discs (radius 7-11) overlapping by 2 px along a random direction, so
    their union is one component; truth labels 1 and 2 (the second wins the overlap). The
    probability is the blurred union (sigma 1.5) times ``scale`` plus N(0, 0.05) noise, so
    with ``scale`` 0.7 a 0.5 cut loses the rims. Every ``empty_every``-th image has no disc,
    only 2-4 bright specks of 2x2 px (a min area removes them)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    probs = np.zeros((n, SIZE, SIZE), dtype=np.float32)
    labels = np.zeros((n, SIZE, SIZE), dtype=np.int32)
    for i in range(n):
        union = np.zeros((SIZE, SIZE), dtype=np.float32)
        if empty_every and i % empty_every == 0:
            for _ in range(rng.integers(2, 5)):
                y, x = rng.integers(2, SIZE - 4, 2)
                union[y:y + 2, x:x + 2] = 1.0
        else:
            r1, r2 = rng.uniform(7, 11, 2)
            angle = rng.uniform(0, np.pi)
            gap = (r1 + r2 - 2) / 2
            cy, cx = SIZE / 2 + rng.uniform(-3, 3, 2)
            for k, (r, sign) in enumerate(((r1, -1), (r2, 1)), start=1):
                inside = np.hypot(yy - cy - sign * gap * np.sin(angle),
                                  xx - cx - sign * gap * np.cos(angle)) <= r
                labels[i][inside] = k
            union = (labels[i] > 0).astype(np.float32)
        blurred = cv2.GaussianBlur(union, (0, 0), 1.5)
        if empty_every and i % empty_every == 0:
            blurred = union  # specks stay sharp and bright
        probs[i] = np.clip(scale * blurred + rng.normal(0, 0.05, union.shape), 0, 1)
    return probs, labels


def _map(pred: np.ndarray, truth: np.ndarray) -> float:
    return mean_instance_average_precision(list(pred), list(truth))


@pytest.fixture(scope="module")
def sharp() -> tuple[np.ndarray, np.ndarray]:
    return _touching_discs(48, seed=1)


@pytest.fixture(scope="module")
def faint() -> tuple[np.ndarray, np.ndarray]:
    return _touching_discs(48, seed=2, scale=0.7, empty_every=6)


@pytest.fixture(scope="module")
def faint_fits(faint) -> dict[str, Any]:
    """The default fits on ``faint``, made once (each a grid search over 48 images) for the
    tests that read or compare with them: ``fit_watershed`` on every image and
    ``fit_watershed_fold_by_fold`` over three folds. Tests take deep copies."""
    probs, truth = faint
    folds = np.arange(len(probs)) % 3
    return {"fit": fit_watershed(probs, truth),
            "fold_by_fold": fit_watershed_fold_by_fold(probs, truth, folds)}


# ---------------------------------------------------------------------------- RLE rows


def _blobs(seed: int, n: int = 6) -> list[np.ndarray]:
    """Disjoint random rectangles and discs, one mask each, some touching the image edges."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:40, :30]
    taken = np.zeros((40, 30), dtype=bool)
    masks = [np.zeros((40, 30), dtype=bool)]
    masks[0][:, 0] = True  # a full column: its F-order run crosses no column boundary
    masks[0][0, 1:] = True  # and a full row, for C order
    taken |= masks[0]
    while len(masks) < n:
        if rng.random() < 0.5:
            y0, x0 = rng.integers(0, 38), rng.integers(0, 28)
            mask = np.zeros((40, 30), dtype=bool)
            mask[y0:y0 + rng.integers(1, 12), x0:x0 + rng.integers(1, 12)] = True
        else:
            mask = np.hypot(yy - rng.uniform(0, 40), xx - rng.uniform(0, 30)) <= rng.uniform(1, 6)
        mask &= ~taken
        if mask.any():
            taken |= mask
            masks.append(mask)
    return masks


@pytest.mark.parametrize("order", ["F", "C"])
def test_rles_to_labels_to_rows_round_trip(order: str) -> None:
    masks = _blobs(seed=0)
    rles = [rle_encode(m, order) for m in masks]
    labels = instance_labels(rles[:2] + [""] + rles[2:], (40, 30), order)  # "" is skipped
    assert labels.dtype == np.int32 and labels.shape == (40, 30)
    assert labels.max() == len(masks)
    for k, mask in enumerate(masks, start=1):
        np.testing.assert_array_equal(labels == k, mask)
    rows = instance_rows(labels, "img7", order)
    assert rows == [("img7", rle) for rle in rles]
    again = instance_labels([rle for _, rle in rows], (40, 30), order)
    np.testing.assert_array_equal(again, labels)


@pytest.mark.parametrize("order", ["F", "C"])
def test_instance_rows_match_whole_image_encoding_with_sparse_ids(order: str) -> None:
    masks = _blobs(seed=3, n=8)
    ids = [5, 2, 100_000, 9, 3, 77, 11, 40]
    labels = np.zeros((40, 30), dtype=np.int64)
    for value, mask in zip(ids, masks, strict=True):
        labels[mask] = value
    rows = instance_rows(labels, "a", order)
    expected = [("a", rle_encode(labels == v, order)) for v in sorted(ids)]
    assert rows == expected
    for (_, rle), value in zip(rows, sorted(ids), strict=True):
        np.testing.assert_array_equal(rle_decode(rle, (40, 30), order), labels == value)


def test_an_image_without_instances_gets_one_empty_row() -> None:
    assert instance_rows(np.zeros((8, 9), dtype=np.int32), "blank", "F") == [("blank", "")]
    assert instance_labels([], (8, 9), "F").shape == (8, 9)
    assert not instance_labels(["", ""], (8, 9), "C").any()


def test_overlaps_go_to_the_later_instance_and_hidden_ones_are_dropped() -> None:
    shape = (10, 12)
    a = np.zeros(shape, dtype=bool)
    a[1:5, 1:6] = True
    b = np.zeros(shape, dtype=bool)
    b[3:7, 4:9] = True  # overlaps a's corner
    hidden = np.zeros(shape, dtype=bool)
    hidden[8, 2:4] = True
    cover = np.zeros(shape, dtype=bool)
    cover[7:10, 1:6] = True  # covers `hidden` entirely
    rles = [rle_encode(m, "F") for m in (a, b, hidden, cover)]
    labels = instance_labels(rles, shape, "F")
    np.testing.assert_array_equal(labels == 1, a & ~b)
    np.testing.assert_array_equal(labels == 2, b)
    np.testing.assert_array_equal(labels == 3, cover)  # `hidden` dropped, cover renumbered
    assert sorted(np.unique(labels).tolist()) == [0, 1, 2, 3]
    assert len(instance_rows(labels, "x", "F")) == 3


# ---------------------------------------------------------------------------- resize


def test_resize_labels_keeps_label_values() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 6, (12, 10)).astype(np.int32)
    labels[0, 0] = 2**24 + 1  # a float32 detour would turn this into 2**24
    up = resize_labels(labels, 36, 20)
    assert up.dtype == np.int32 and up.shape == (36, 20)
    np.testing.assert_array_equal(up, np.repeat(np.repeat(labels, 3, axis=0), 2, axis=1))
    down = resize_labels(labels, 6, 5)
    np.testing.assert_array_equal(down, labels[1::2, 1::2])  # the pixel under each centre
    odd = resize_labels(labels, 17, 7)
    assert odd.shape == (17, 7)
    assert set(np.unique(odd).tolist()) <= set(np.unique(labels).tolist())
    smooth = np.kron(np.array([[1, 2], [3, 4]]), np.ones((5, 5), dtype=np.int64))
    assert set(np.unique(resize_labels(smooth, 23, 13)).tolist()) == {1, 2, 3, 4}


# ---------------------------------------------------------------------------- fitting


def test_fitted_watershed_beats_components_on_touching_discs(sharp) -> None:
    probs, truth = sharp
    fitted = fit_watershed(probs, truth)
    components = np.stack([ndi.label(p >= 0.5, structure=np.ones((3, 3)))[0] for p in probs])
    default = _map(apply_watershed(probs, DEFAULT_WATERSHED), truth)
    score = _map(apply_watershed(probs, fitted), truth)
    assert fitted["map"] == pytest.approx(score, abs=1e-9)
    assert fitted["map_default"] == pytest.approx(default, abs=1e-9)
    assert score >= default
    assert score > _map(components, truth) + 0.5  # one component per touching pair: ~0.1


def test_fit_moves_off_defaults_when_they_lose_the_rims(faint, faint_fits) -> None:
    probs, truth = faint
    fitted = copy.deepcopy(faint_fits["fit"])  # fit_watershed(probs, truth)
    assert not fitted["kept_defaults"]
    assert fitted["threshold"] < 0.5  # a 0.5 cut of a 0.7-scaled blur loses the rims
    assert fitted["min_area"] > 0  # and the specks on empty images must go
    assert fitted["map"] > fitted["map_default"] + 0.1
    assert fitted["map"] == pytest.approx(_map(apply_watershed(probs, fitted), truth), abs=1e-9)


def test_cached_scores_equal_the_dsb_metric_for_every_setting(faint) -> None:
    """The fit's cache (one watershed per image and marker setting, min areas applied
    afterwards, a vectorised AP) must hold the metric's score of what apply_watershed gives,
    for core and distance markers, every min area, and images with no true instance."""
    probs, truth = faint[0][:12], faint[1][:12]
    assert not truth[0].any() and not truth[6].any()
    table = _Table(probs, truth, {"threshold": [0.35, 0.6], "min_distance": [2, 6],
                                  "core_threshold": [0.55, 0.8], "min_area": [3, 9, 30]})
    assert len(table.settings) == 1 + 2 * 2 + 3  # default + distances + cores above each cut
    assert table.min_areas.tolist() == [0, 3, 9, 30]
    for s in range(len(table.settings)):
        for a in range(len(table.min_areas)):
            labels = apply_watershed(probs, table.params(s, a))
            expected = [instance_average_precision(p, t) for p, t in zip(labels, truth,
                                                                         strict=True)]
            np.testing.assert_allclose(table.scores[:, s, a], expected, atol=1e-12)


def test_defaults_are_kept_unless_beaten_by_min_gain(sharp, faint) -> None:
    # no instance under 4 px: every min area ties with the defaults, which must then stay
    tied = fit_watershed(*sharp, grid={"threshold": [0.5], "min_distance": [3],
                                       "core_threshold": [], "min_area": [1, 2, 3]},
                         min_gain=0.0)
    assert tied["kept_defaults"] and tied["min_area"] == 0
    assert tied["map"] == tied["map_default"]
    probs, truth = faint
    free = fit_watershed(probs, truth, min_gain=0.0)
    gain = free["map"] - free["map_default"]
    assert gain > 0.05
    kept = fit_watershed(probs, truth, min_gain=gain + 0.01)
    assert kept["kept_defaults"]
    assert {k: kept[k] for k in DEFAULT_WATERSHED} == DEFAULT_WATERSHED
    assert kept["map"] == kept["map_default"] == free["map_default"]
    moved = fit_watershed(probs, truth, min_gain=gain - 0.01)
    assert {k: moved[k] for k in DEFAULT_WATERSHED} == {k: free[k] for k in DEFAULT_WATERSHED}


def test_fold_by_fold_fits_each_fold_without_it(faint, faint_fits) -> None:
    probs, truth = faint
    folds = np.arange(len(probs)) % 3
    out, report = copy.deepcopy(faint_fits["fold_by_fold"])  # ...fold_by_fold(probs, truth, folds)
    assert out.dtype == np.int32 and out.shape == probs.shape
    assert [entry["fold"] for entry in report["folds"]] == [0, 1, 2]
    for entry in report["folds"]:
        held = folds == entry["fold"]
        alone = fit_watershed(probs, truth, rows=~held)
        assert {k: entry[k] for k in alone} == alone
        np.testing.assert_array_equal(out[held], apply_watershed(probs[held], alone))
        assert entry["map_fold_after"] == pytest.approx(_map(out[held], truth[held]), abs=1e-9)
    assert report["map_after"] == pytest.approx(_map(out, truth), abs=1e-9)
    assert report["map_before"] == pytest.approx(
        _map(apply_watershed(probs, DEFAULT_WATERSHED), truth), abs=1e-9)
    assert report["map_after"] > report["map_before"]
    # fold 0's labels must not depend on fold 0's truth
    blind = truth.copy()
    blind[folds == 0] = 0
    out_blind, _ = fit_watershed_fold_by_fold(probs, blind, folds)
    np.testing.assert_array_equal(out_blind[folds == 0], out[folds == 0])


# ---------------------------------------------------------------------------- bad input


def test_bad_inputs_raise_podium_input_errors(sharp) -> None:
    probs, truth = sharp
    small = probs[:4]
    with pytest.raises(PodiumInputError, match=r"\(4, 64, 64\).*\(4, 32, 32\)"):
        fit_watershed(small, truth[:4, :32, :32])
    with pytest.raises(PodiumInputError, match="integer instance label"):
        fit_watershed(small, truth[:4].astype(np.float32))
    with pytest.raises(PodiumInputError, match="negative label"):
        fit_watershed(small, -truth[:4])
    with pytest.raises(PodiumInputError, match="3 fold labels for 4 images"):
        fit_watershed_fold_by_fold(small, truth[:4], [0, 1, 0])
    with pytest.raises(PodiumInputError, match="at least two folds"):
        fit_watershed_fold_by_fold(small, truth[:4], [0, 0, 0, 0])
    with pytest.raises(PodiumInputError, match="rows selects no image"):
        fit_watershed(small, truth[:4], rows=np.zeros(4, dtype=bool))
    with pytest.raises(PodiumInputError, match="unknown watershed grid key 'treshold'"):
        fit_watershed(small, truth[:4], grid={"treshold": [0.5]})
    with pytest.raises(PodiumInputError, match="lack core_threshold"):
        apply_watershed(small, {"threshold": 0.5, "min_distance": 3, "min_area": 0})
    with pytest.raises(PodiumInputError, match="in \\[0, 1\\]"):
        apply_watershed(small * 255, DEFAULT_WATERSHED)
    with pytest.raises(PodiumInputError, match="wrap it in a list"):
        instance_labels("1 3", (4, 4), "F")
    with pytest.raises(PodiumInputError, match="instance 1 .*past the last pixel"):
        instance_labels(["1 3", "10 9"], (4, 4), "F")
    with pytest.raises(PodiumInputError, match="unknown RLE pixel order"):
        instance_rows(truth[0], "x", "Z")
    with pytest.raises(PodiumInputError, match="integer instance label"):
        resize_labels(probs[0], 10, 10)
    with pytest.raises(PodiumInputError, match="height must be an integer >= 1"):
        resize_labels(truth[0], 0, 10)


def test_fit_all_is_fit_watershed_on_every_image(faint, faint_fits) -> None:
    probs, truth = faint
    folds = np.arange(len(probs)) % 3
    out, report = fit_watershed_fold_by_fold(probs, truth, folds, fit_all=True)
    plain_out, plain = faint_fits["fold_by_fold"]  # fit_watershed_fold_by_fold(probs, truth, folds)
    np.testing.assert_array_equal(out, plain_out)
    assert report.pop("fitted") == faint_fits["fit"] and report == plain
