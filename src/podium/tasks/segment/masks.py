"""Train masks packed beside the train images, and the way back to each image's own size.

Masks come from run-length encodings in the manifest, in the images' original pixels, one per
mask class (:mod:`podium.tasks.segment.classes`). They are decoded once, packed as the bits of one
uint8 per pixel and resized to the packed size with nearest-neighbour interpolation (bits stay
bits), row for row with the packed train images, so training reads them like images.
Predictions go the other way: probability maps at the packed size are resized to each test
image's height and width (or to the size the competition scores, ``submission.mask_size``),
then thresholded and encoded (:func:`to_size` says how).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from numpy.lib.format import open_memmap

from podium.errors import PodiumInputError
from podium.glue import StageJob
from podium.task import TARGET_COLUMN, TaskSpec
from podium.tasks.segment.classes import class_rles, pack_bits, presence_strata
from podium.tasks.segment.options import SegmentOptions
from podium.tasks.segment.rle import DEFAULT_FORMAT, INSTANCE_JOIN, rle_decode

log = logging.getLogger(__name__)

AREA_BINS = 3
"""Non-empty masks are split into this many area bins (tertiles) for fold stratification."""


def rle_area(rle: object) -> int:
    """Foreground pixels of an RLE string without decoding it: the sum of its run lengths
    (the second value of every pair in each format of :mod:`podium.tasks.segment.rle`)."""
    if not isinstance(rle, str) or not rle.strip() or rle.strip() == "-1":
        return 0
    return sum(int(np.asarray(part.split()[1::2], dtype=np.int64).sum())
               for part in rle.split(INSTANCE_JOIN))


def stratification_labels(rles: pd.Series, n_classes: int = 1) -> np.ndarray:
    """0 for an empty mask, else 1..AREA_BINS by area tertile: folds then hold the same share
    of empty images and of small and large objects (the SIIM and Airbus CV habit). With
    several classes, the set of classes each image holds (:func:`presence_strata`)."""
    if n_classes > 1:
        return presence_strata(rles, n_classes)
    areas = np.array([rle_area(v) for v in rles], dtype=np.int64)
    labels = np.zeros(len(areas), dtype=np.int64)
    present = areas > 0
    if present.any():
        edges = np.quantile(areas[present], np.linspace(0, 1, AREA_BINS + 1)[1:-1])
        labels[present] = 1 + np.searchsorted(edges, areas[present], side="right")
    return labels


def decode_to_size(cell: object, height: int, width: int, size: int, order: str,
                   n_classes: int = 1, rle_format: str = DEFAULT_FORMAT) -> np.ndarray:
    """One train image's masks at the packed ``size x size``, bit k for class k (nearest
    neighbour, like a label map)."""
    mask = pack_bits([rle_decode(rle, (height, width), order, rle_format)
                      for rle in class_rles(cell, n_classes)])
    if (height, width) == (size, size):
        return mask
    return cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST)


def pack_rows(manifest: pd.DataFrame, index: pd.DataFrame, size: int, dtype: type,
              out_path: str | Path,
              decode: Callable[[str, pd.Series], np.ndarray]) -> np.ndarray:
    """Write ``N x size x size`` arrays in the row order of the packed train ``index``, each
    ``decode(id, manifest row)`` (masks and instance labels alike)."""
    by_id = manifest.set_index("id")
    packed = open_memmap(out_path, mode="w+", dtype=dtype, shape=(len(index), size, size))
    for row, image_id in zip(index["row"], index["id"], strict=True):
        packed[row] = decode(image_id, by_id.loc[image_id])
    packed.flush()
    return packed


def pack_masks(manifest: pd.DataFrame, index: pd.DataFrame, target: str, order: str,
               size: int, out_path: str | Path, n_classes: int = 1,
               rle_format: str = DEFAULT_FORMAT) -> np.ndarray:
    """Write ``N x size x size`` uint8 masks (bit k: class k) in the row order of the packed
    train ``index``."""
    def decode(image_id: str, entry: pd.Series) -> np.ndarray:
        try:
            return decode_to_size(entry[target], int(entry["height"]), int(entry["width"]),
                                  size, order, n_classes, rle_format)
        except ValueError as err:
            raise PodiumInputError(
                f"train image {image_id!r}: its {target} run-length encoding does not fit the "
                f"{entry['height']}x{entry['width']} image ({err}); check "
                f"competition.rle_format ({rle_format}) and competition.mask_order ({order}; "
                "F: top to bottom first, C: left to right first)."
            ) from None

    packed = pack_rows(manifest, index, size, np.uint8, out_path, decode)
    log.info("packed %d masks into %s (%d with foreground)", len(index), out_path,
             int((packed.reshape(len(index), -1).max(axis=1) > 0).sum()))
    return packed


MASK_COVER = 0.5
"""A 0/1 mask shrunk to a coarser grid keeps a pixel when at least this share of the area it
covers is foreground."""


def to_size(plane: np.ndarray, height: int, width: int) -> np.ndarray:
    """A ``H x W`` probability map (float) or 0/1 mask (uint8, kept 0/1) at ``height x width``.

    Shrinking on both sides averages over each output pixel's area (``cv2.INTER_AREA``), so a
    probability is the mean over the pixels it stands for and a mask keeps a pixel when at
    least :data:`MASK_COVER` of its area is foreground; that is the mask a scorer at a coarser
    size (Understanding Clouds' 350x525 for 1400x2100 images) sees from a full-size truth,
    where picking one source pixel (nearest) would alias thin shapes. Enlarging (or mixed)
    interpolates probabilities bilinearly and masks by nearest neighbour."""
    if plane.shape == (height, width):
        return plane
    binary = plane.dtype == np.uint8
    shrink = height <= plane.shape[0] and width <= plane.shape[1]
    if shrink:
        area = cv2.resize(plane.astype(np.float32), (width, height),
                          interpolation=cv2.INTER_AREA)
        return (area >= MASK_COVER).astype(np.uint8) if binary else area
    return cv2.resize(plane.astype(np.uint8 if binary else np.float32), (width, height),
                      interpolation=cv2.INTER_NEAREST if binary else cv2.INTER_LINEAR)


def pack_job(job: StageJob) -> np.ndarray:
    """The ``pack_train_masks`` job: every train image's masks decoded and packed row for row
    with the packed train images, at ``preprocess.size``."""
    spec = TaskSpec.load(job.inputs["task"])
    options = SegmentOptions.of(spec)
    return pack_masks(pd.read_parquet(job.inputs["manifest"]),
                      pd.read_parquet(job.inputs["index"]), TARGET_COLUMN, options.mask_order,
                      job.options["size"], job.outputs["packed"], n_classes=spec.n_classes,
                      rle_format=options.rle_format)
