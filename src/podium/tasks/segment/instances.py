"""DSB-2018-style instances: label images from per-instance RLE rows, watershed splitting of
predicted foreground maps with parameters fitted on OOF predictions by the instance mAP, and
submission rows (one RLE per instance) from label images.

Why fit the watershed at all: on DSB nuclei the split of touching objects moved the score
more than most model changes, and the best threshold, marker rule and minimum size depend on
how the model is calibrated and how large the objects are. As in
:mod:`podium.tasks.segment.postprocess`, the fit only sees OOF rows, keeps the defaults unless it
beats them by :data:`~podium.tasks.segment.postprocess.MIN_GAIN`, and
:func:`fit_watershed_fold_by_fold` scores it honestly: fold k is split with parameters fitted
on the other folds only.

Shapes: probabilities are ``(N, H, W)`` floats in [0, 1]; instance labels are ``(N, H, W)``
integers, 0 background and any positive value one instance. Each (image, threshold, marker
rule) is watershedded once per fit; every minimum area is then scored from that one result,
because dropping small instances leaves the IoUs of the others unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from podium.ensemble.crossfit import cross_fit
from podium.errors import PodiumInputError, did_you_mean
from podium.glue import StageJob
from podium.metrics.masks import DSB_THRESHOLDS
from podium.task import TARGET_COLUMN, TaskSpec
from podium.tasks.segment.options import SegmentOptions
from podium.tasks.segment.postprocess import (
    MIN_GAIN,
    check_min_area,
    check_threshold,
    prob_stack,
    watershed_instances,
)
from podium.tasks.segment.rle import (
    DEFAULT_FORMAT,
    INSTANCE_JOIN,
    format_runs,
    get_format,
    mask_runs,
    rle_decode,
)

DEFAULT_WATERSHED: dict[str, Any] = {"threshold": 0.5, "min_distance": 3,
                                     "core_threshold": None, "min_area": 0}
"""The parameters used when a fit does not clearly beat them: 0.5 cut, distance-transform
peaks at least 3 px apart as markers, every instance kept."""
DEFAULT_GRID: dict[str, tuple[Any, ...]] = {
    "threshold": (0.3, 0.4, 0.5, 0.6, 0.7),
    "min_distance": (2, 3, 5, 8),
    "core_threshold": (0.6, 0.7, 0.8, 0.9),
    "min_area_fraction": (0.0, 0.0005, 0.001, 0.0025, 0.005),
}
"""The default search: every threshold with distance-peak markers at each ``min_distance``
and with confident-core markers at each ``core_threshold`` above the threshold (a core at
or below it would just be the connected components); each of those with every minimum area,
given as a fraction of the image's pixels (0 to 0.5%: 0-20 px at 64x64, 0-328 px at 256x256).
Instead of ``min_area_fraction`` a grid may give ``min_area`` in pixels. 5 thresholds x
(4 + up to 4) marker rules = 37 watershed runs per image."""
_GRID_KEYS = ("threshold", "min_distance", "core_threshold", "min_area_fraction", "min_area")

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- checks


def _int_array(labels: np.ndarray, name: str, ndim: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.dtype == bool or not np.issubdtype(labels.dtype, np.integer):
        raise PodiumInputError(
            f"{name} must be an integer instance label array (0 background, 1..n instances), "
            f"got dtype {labels.dtype}; label a binary mask with scipy.ndimage.label or build "
            f"labels from RLE rows with instance_labels.")
    if labels.ndim != ndim:
        want = "(H, W)" if ndim == 2 else "(N, H, W)"
        raise PodiumInputError(f"{name} must be a {want} array, got shape {labels.shape}.")
    if labels.size and labels.min() < 0:
        raise PodiumInputError(f"{name} hold a negative label {labels.min()}; labels are "
                               f"0 (background) and positive instance ids.")
    return labels


def _check_pair(probs: np.ndarray, true_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    given = np.asarray(probs)
    if given.ndim != 3:
        raise PodiumInputError(f"probabilities must be an (N, H, W) stack, got shape "
                               f"{given.shape}; add an image axis with probs[None].")
    stack, _ = prob_stack(given)
    truth = np.asarray(true_labels)
    if truth.shape != stack.shape:
        raise PodiumInputError(f"probabilities have shape {stack.shape} but true labels have "
                               f"shape {truth.shape}; they must match image for image.")
    return stack, _int_array(truth, "true labels", 3)


def _check_min_distance(min_distance: int) -> int:
    if isinstance(min_distance, bool) or not isinstance(min_distance, int | np.integer) \
            or min_distance < 1:
        raise PodiumInputError(f"min_distance must be an integer >= 1, got {min_distance!r}.")
    return int(min_distance)


def _check_params(params: Mapping[str, Any]) -> dict[str, Any]:
    missing = [key for key in DEFAULT_WATERSHED if key not in params]
    if missing:
        raise PodiumInputError(f"watershed params lack {', '.join(missing)}; give all of "
                               f"{', '.join(DEFAULT_WATERSHED)} (fit_watershed returns them).")
    core = params["core_threshold"]
    return {"threshold": check_threshold(params["threshold"]),
            "min_distance": _check_min_distance(params["min_distance"]),
            "core_threshold": None if core is None else check_threshold(core),
            "min_area": check_min_area(params["min_area"])}


def _row_mask(rows: np.ndarray | Sequence[int] | None, n: int) -> np.ndarray:
    """``rows`` as a boolean mask over the n images: a mask of length n or image indices."""
    if rows is None:
        return np.ones(n, dtype=bool)
    given = np.asarray(rows)
    if given.dtype == bool:
        if given.shape != (n,):
            raise PodiumInputError(f"a boolean rows mask must have one entry per image "
                                   f"({n}), got shape {given.shape}.")
        mask = given.copy()
    elif np.issubdtype(given.dtype, np.integer) and given.ndim == 1:
        if given.size and (given.min() < -n or given.max() >= n):
            raise PodiumInputError(f"rows holds an index outside 0..{n - 1}.")
        mask = np.zeros(n, dtype=bool)
        mask[given] = True
    else:
        raise PodiumInputError(f"rows must be a boolean mask or a 1-D array of image "
                               f"indices, got dtype {given.dtype} and shape {given.shape}.")
    if not mask.any():
        raise PodiumInputError("rows selects no image; a watershed fit needs at least one.")
    return mask


# ---------------------------------------------------------------------------- labels


def instance_labels(rles: Sequence[str], shape: tuple[int, int], order: str,
                    rle_format: str = DEFAULT_FORMAT) -> np.ndarray:
    """An int32 label image (0 background, 1..n) from one image's per-instance RLE strings,
    as DSB's train labels give them (one row per nucleus).

    Empty strings are skipped. Where instances overlap the later one wins the pixel; an
    instance left with no pixel is dropped and the rest renumbered 1..n in their order, so
    the label count is the number of instances the metric will see."""
    if isinstance(rles, str):
        raise PodiumInputError("instance_labels takes a sequence of RLE strings (one per "
                               "instance), got one string; wrap it in a list.")
    get_format(rle_format, order)
    labels: np.ndarray | None = None
    for i, rle in enumerate(rles):
        try:
            mask = rle_decode(rle, shape, order, rle_format)
        except PodiumInputError:
            raise
        except ValueError as err:
            raise PodiumInputError(f"instance {i} (0-based) of this image: {err}") from None
        if labels is None:
            labels = np.zeros(mask.shape, dtype=np.int32)
        labels[mask != 0] = i + 1
    if labels is None:  # no instance at all: still check the shape
        labels = np.zeros(rle_decode("", shape, order, rle_format).shape, dtype=np.int32)
    present = np.unique(labels)
    present = present[present > 0]
    lookup = np.zeros(len(rles) + 1, dtype=np.int32)
    lookup[present] = np.arange(1, len(present) + 1, dtype=np.int32)
    return lookup[labels]


def resize_labels(labels: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize of an (H, W) label image to (height, width), int32.

    Done by index mapping (each output pixel takes the input pixel under its centre, the
    rule of ``cv2.INTER_NEAREST_EXACT``), not by cv2: interpolating label values would invent
    labels, and a float32 detour would corrupt ids above 2**24. Values are kept as they are;
    an instance too small to survive a downscale simply disappears (no renumbering)."""
    labels = _int_array(labels, "labels", 2)
    for name, side in (("height", height), ("width", width)):
        if isinstance(side, bool) or not isinstance(side, int | np.integer) or side < 1:
            raise PodiumInputError(f"resize_labels {name} must be an integer >= 1, "
                                   f"got {side!r}.")
    if labels.size and labels.max() > np.iinfo(np.int32).max:
        raise PodiumInputError(f"labels reach {labels.max()}, beyond int32; renumber them "
                               f"1..n first.")
    in_h, in_w = labels.shape
    rows = np.minimum(((np.arange(height) + 0.5) * in_h / height).astype(np.int64), in_h - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * in_w / width).astype(np.int64), in_w - 1)
    return labels[rows[:, None], cols[None, :]].astype(np.int32)


def instance_rows(labels: np.ndarray, image_id: str, order: str,
                  rle_format: str = DEFAULT_FORMAT) -> list[tuple[str, str]]:
    """DSB submission rows of one image: ``(image_id, rle)`` per instance, in label order;
    an image without instances gets the single row ``(image_id, "")``, as DSB expects.

    Each instance's runs are found in the strip of columns (order "F") or rows (order "C")
    it spans, then shifted to the image's pixel numbers and written in ``rle_format``, so an
    image with hundreds of nuclei costs about one pass over the image rather than one per
    nucleus."""
    labels = _int_array(labels, "labels", 2)
    get_format(rle_format, order)
    values, compact = np.unique(labels, return_inverse=True)
    compact = compact.reshape(labels.shape)
    if values[0] == 0:
        values = values[1:]
    else:
        compact = compact + 1
    if values.size == 0:
        return [(image_id, "")]
    height, width = labels.shape
    rows: list[tuple[str, str]] = []
    for k, box in enumerate(ndi.find_objects(compact), start=1):
        if order == "F":
            strip, offset = compact[:, box[1]] == k, box[1].start * height
        else:
            strip, offset = compact[box[0], :] == k, box[0].start * width
        starts, lengths = mask_runs(strip, order)
        rows.append((image_id, format_runs(starts + offset, lengths, rle_format, order)))
    return rows


# ---------------------------------------------------------------------------- grid


def _settings(grid: Mapping[str, Any] | None,
              pixels: int) -> tuple[list[tuple[float, int, float | None]], np.ndarray]:
    """The (threshold, min_distance, core_threshold) marker settings, the default first, and
    the sorted minimum areas in pixels (0 always included)."""
    grid = dict(grid or {})
    unknown = [key for key in grid if key not in _GRID_KEYS]
    if unknown:
        raise PodiumInputError(f"unknown watershed grid key {unknown[0]!r}; known: "
                               f"{', '.join(_GRID_KEYS)}.{did_you_mean(unknown[0], _GRID_KEYS)}")
    if "min_area" in grid and "min_area_fraction" in grid:
        raise PodiumInputError("give the watershed grid min_area (pixels) or "
                               "min_area_fraction (of the image), not both.")
    full = {**DEFAULT_GRID, **grid}
    thresholds = [check_threshold(t) for t in full["threshold"]]
    distances = [_check_min_distance(d) for d in full["min_distance"]]
    cores = [check_threshold(c) for c in full["core_threshold"]]
    if "min_area" in grid:
        areas = [check_min_area(a) for a in grid["min_area"]]
    else:
        fractions = list(full["min_area_fraction"])
        for f in fractions:
            if isinstance(f, bool) or not isinstance(f, int | float) or not 0 <= f <= 1:
                raise PodiumInputError(f"min_area_fraction values must be numbers in [0, 1], "
                                       f"got {f!r}.")
        areas = [round(f * pixels) for f in fractions]
    default = (float(DEFAULT_WATERSHED["threshold"]), int(DEFAULT_WATERSHED["min_distance"]),
               DEFAULT_WATERSHED["core_threshold"])
    settings = [default]
    for t in thresholds:
        candidates = [(t, d, None) for d in distances]
        candidates += [(t, default[1], c) for c in cores if c > t]
        settings += [s for s in candidates if s not in settings]
    return settings, np.unique(np.array(areas + [0], dtype=np.int64))


def _true_index(truth: np.ndarray) -> tuple[np.ndarray, int]:
    """One image's truth as 0 (background) and 1..n_true, and n_true."""
    values, index = np.unique(truth, return_inverse=True)
    index = index.reshape(-1)
    if values[0] != 0:
        index = index + 1
    return index, int(np.count_nonzero(values))


def _area_scores(pred: np.ndarray, true_index: np.ndarray, n_true: int,
                 min_areas: np.ndarray) -> np.ndarray:
    """The DSB score of one watershed result (labels 1..n_pred) at every minimum area.

    Above IoU 0.5 a predicted instance overlaps at most one true instance that much (both
    are disjoint), so the TPs at each threshold are the predictions whose best IoU beats it:
    the same count as :func:`~podium.metrics.masks.instance_average_precision`'s matching.
    Dropping predictions under a minimum area leaves the others' IoUs unchanged."""
    n_pred = int(pred.max())
    if n_pred == 0:
        return np.full(len(min_areas), 1.0 if n_true == 0 else 0.0)
    n_t = n_true + 1
    joint = np.bincount(pred.reshape(-1).astype(np.int64) * n_t + true_index,
                        minlength=(n_pred + 1) * n_t).reshape(n_pred + 1, n_t)
    area_p, area_t = joint.sum(axis=1)[1:], joint.sum(axis=0)[1:]
    inter = joint[1:, 1:]
    if n_true:
        best = (inter / (area_p[:, None] + area_t[None, :] - inter)).max(axis=1)
    else:
        best = np.zeros(n_pred)
    kept = (area_p[None, :] >= min_areas[:, None]).astype(np.float64)  # (areas, preds)
    hits = (best[None, :] > DSB_THRESHOLDS[:, None]).astype(np.float64)  # (thresholds, preds)
    tp = kept @ hits.T
    total = kept.sum(axis=1)[:, None] + n_true - tp
    scores = np.divide(tp, total, out=np.ones_like(tp), where=total > 0)
    return scores.mean(axis=1)


class _Table:
    """Every image's DSB score at every (marker setting, minimum area) of the grid, computed
    once, so that any fit on any rows is a mean over a slice."""

    def __init__(self, probs: np.ndarray, truth: np.ndarray,
                 grid: Mapping[str, Any] | None) -> None:
        pixels = probs.shape[1] * probs.shape[2]
        self.settings, self.min_areas = _settings(grid, pixels)
        self.scores = np.zeros((len(probs), len(self.settings), len(self.min_areas)))
        for i in range(len(probs)):
            true_index, n_true = _true_index(truth[i])
            for s, (threshold, min_distance, core) in enumerate(self.settings):
                pred = watershed_instances(probs[i], threshold, min_distance,
                                           core_threshold=core)
                self.scores[i, s] = _area_scores(pred, true_index, n_true, self.min_areas)
        self.default = (0, int(np.searchsorted(self.min_areas, DEFAULT_WATERSHED["min_area"])))

    def params(self, s: int, a: int) -> dict[str, Any]:
        threshold, min_distance, core = self.settings[s]
        return {"threshold": threshold, "min_distance": min_distance, "core_threshold": core,
                "min_area": int(self.min_areas[a])}

    def index(self, params: Mapping[str, Any]) -> tuple[int, int]:
        key = (params["threshold"], params["min_distance"], params["core_threshold"])
        return self.settings.index(key), int(np.searchsorted(self.min_areas,
                                                             params["min_area"]))

    def fit(self, rows: np.ndarray, min_gain: float) -> dict[str, Any]:
        """Best params on ``rows`` by mean DSB score; ties go to the earliest in grid order
        (the default first), and a win under ``min_gain`` keeps the defaults."""
        means = self.scores[rows].mean(axis=0)
        s, a = np.unravel_index(int(np.argmax(means >= means.max() - 1e-12)), means.shape)
        best, default = float(means[s, a]), float(means[self.default])
        kept = (int(s), int(a)) == self.default or best - default < min_gain
        params = dict(DEFAULT_WATERSHED) if kept else self.params(int(s), int(a))
        return {**params, "map": default if kept else best, "map_default": default,
                "kept_defaults": bool(kept), "n_images": int(rows.sum())}


# ---------------------------------------------------------------------------- fit / apply


def fit_watershed(probs: np.ndarray, true_labels: np.ndarray,
                  rows: np.ndarray | Sequence[int] | None = None,
                  grid: Mapping[str, Any] | None = None,
                  min_gain: float = MIN_GAIN) -> dict[str, Any]:
    """Watershed params with the best mean DSB instance AP on ``rows`` (all images if None;
    a boolean mask or indices), for :func:`apply_watershed`.

    ``grid`` overrides keys of :data:`DEFAULT_GRID`. Returns :data:`DEFAULT_WATERSHED`'s keys
    plus ``map`` (the chosen params' mean AP on the rows: optimistic, being fitted there),
    ``map_default``, ``kept_defaults`` and ``n_images``. The defaults are kept unless the
    best beats them by ``min_gain``: a win of a few thousandths is noise that costs on
    other images."""
    stack, truth = _check_pair(probs, true_labels)
    mask = _row_mask(rows, len(stack))
    table = _Table(stack[mask], truth[mask], grid)
    return table.fit(np.ones(int(mask.sum()), dtype=bool), min_gain)


def apply_watershed(probs: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
    """int32 instance labels, (N, H, W) (or (H, W) for one map), from probabilities and
    :func:`fit_watershed` params."""
    stack, single = prob_stack(probs)
    p = _check_params(params)
    out = np.zeros(stack.shape, dtype=np.int32)
    for i in range(len(stack)):
        out[i] = watershed_instances(stack[i], p["threshold"], p["min_distance"],
                                     p["min_area"], core_threshold=p["core_threshold"])
    return out[0] if single else out


def fit_watershed_fold_by_fold(
    probs: np.ndarray, true_labels: np.ndarray, folds: np.ndarray | Sequence[Any], *,
    grid: Mapping[str, Any] | None = None, min_gain: float = MIN_GAIN, fit_all: bool = False,
) -> tuple[np.ndarray, dict[str, Any]]:
    """OOF instance labels where fold k's come from params fitted on the other folds only.

    Returns the ``(N, H, W)`` int32 labels and a report: ``folds`` (per fold: ``fold``, the
    params and fit scores as :func:`fit_watershed` gives them on the other folds, and that
    fold's ``map_fold_before`` (defaults) and ``map_fold_after``) and the overall
    ``map_before`` / ``map_after``. Fold k's labels never depend on fold k's truth, so
    ``map_after`` is an honest estimate of what fitting the watershed adds on test.
    ``fit_all`` adds ``fitted``, what :func:`fit_watershed` gives on every image, from the
    same watershed runs."""
    stack, truth = _check_pair(probs, true_labels)
    folds = np.asarray(folds).reshape(-1)
    if len(folds) != len(stack):
        raise PodiumInputError(f"got {len(folds)} fold labels for {len(stack)} images; give "
                               f"one fold label per image.")
    if len(np.unique(folds)) < 2:  # before the watershed table, the costly part
        raise PodiumInputError("fold-by-fold watershed fitting needs at least two folds.")
    table = _Table(stack, truth, grid)
    before = table.scores[(slice(None), *table.default)]
    out, fits = cross_fit(folds, lambda train: table.fit(train, min_gain),
                          lambda fitted, held: apply_watershed(stack[held], fitted),
                          what="fold-by-fold watershed fitting")
    out = out.astype(np.int32, copy=False)
    after = np.zeros(len(stack))
    for f in fits:
        after[f.held] = table.scores[(f.held, *table.index(f.fitted))]
    report = [{"fold": f.fold, **f.fitted, "map_fold_before": float(before[f.held].mean()),
               "map_fold_after": float(after[f.held].mean())} for f in fits]
    summary = {"folds": report, "map_before": float(before.mean()),
               "map_after": float(after.mean())}
    if fit_all:
        summary["fitted"] = table.fit(np.ones(len(stack), dtype=bool), min_gain)
    return out, summary


# ---------------------------------------------------------------------------- workflow glue


def pack_instance_labels(manifest: Any, index: Any, target: str, order: str, size: int,
                         out_path: Any, rle_format: str = DEFAULT_FORMAT) -> np.ndarray:
    """Write ``N x size x size`` int32 instance labels in the row order of the packed train
    ``index``, from each image's ``;``-joined instance encodings (nearest-neighbour resize,
    so labels stay labels; an object smaller than a packed pixel may vanish)."""
    from podium.tasks.segment.masks import pack_rows  # here: entries and plots never pack

    def decode(_: str, entry: Any) -> np.ndarray:
        cell = entry[target]
        rles = cell.split(INSTANCE_JOIN) if isinstance(cell, str) and cell else []
        labels = instance_labels(rles, (int(entry["height"]), int(entry["width"])), order,
                                 rle_format)
        return resize_labels(labels, size, size)

    return pack_rows(manifest, index, size, np.int32, out_path, decode)


def labels_of(maps: np.ndarray) -> np.ndarray:
    """``N x H x W`` instance labels of an entry's ``N x 1 x H x W`` maps: int32 maps are
    labels already (an ``instances`` post-processed entry); probabilities and 0/1 masks are
    split with :data:`DEFAULT_WATERSHED`, so every entry is scored by the same metric."""
    planes = np.asarray(maps)[:, 0]
    if planes.dtype == np.int32:
        return planes
    return apply_watershed(planes.astype(np.float32), DEFAULT_WATERSHED)


def instance_rows_of(labels: np.ndarray, image_ids: Sequence[str], order: str,
                     rle_format: str = DEFAULT_FORMAT) -> list[tuple[str, str]]:
    """Submission rows of many images: one per instance, ``(id, "")`` for an image with
    none, images in the order given."""
    return [row for image_id, image in zip(image_ids, labels, strict=True)
            for row in instance_rows(image, image_id, order, rle_format)]


def pack_job(job: StageJob) -> np.ndarray:
    """The ``pack_train_instances`` job of an instance competition: each train image's
    instances as int32 labels, row for row with the packed train images."""
    import pandas as pd

    spec = TaskSpec.load(job.inputs["task"])
    options = SegmentOptions.of(spec)
    packed = pack_instance_labels(
        pd.read_parquet(job.inputs["manifest"]), pd.read_parquet(job.inputs["index"]),
        TARGET_COLUMN, options.mask_order, job.options["size"], job.outputs["packed"],
        rle_format=options.rle_format)
    log.info("packed the instances of %d train images (%d objects)", len(packed),
             sum(len(np.unique(image)) - 1 for image in packed))
    return packed
