"""The embedded segmentation demo: bright ellipses on a noisy, shaded background, or with
``classes``, ellipses and boxes as two mask classes.

Generated rather than downloaded, so the segmentation path runs anywhere. Objects sometimes
touch or overlap (so instance splitting such as watershed has work), a share of images is
empty (so the empty-mask convention of the metrics matters), and the same seed writes the same
files byte for byte. Two classes are written as Kaggle writes them (Severstal): one CSV row per
image and class, the class in column ``class``.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from podium.errors import PodiumInputError
from podium.glue import StageJob
from podium.tables import write_csv
from podium.tasks.segment.classes import class_rles, join_rles
from podium.tasks.segment.rle import DEFAULT_FORMAT, get_format, rle_encode

log = logging.getLogger(__name__)

MAX_OBJECTS = 4
TOUCH_PROBABILITY = 0.5  # chance that an object is placed against the previous one
LIFTS = ((90.0, 130.0), (35.0, 60.0))  # brightness over the background: ellipses, boxes


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A dim base level plus a linear intensity ramp in a random direction."""
    base = rng.uniform(30.0, 70.0)
    angle = rng.uniform(0.0, 2.0 * math.pi)
    ramp = np.linspace(-0.5, 0.5, size)
    yy, xx = np.meshgrid(ramp, ramp, indexing="ij")
    return base + rng.uniform(0.0, 40.0) * (math.cos(angle) * xx + math.sin(angle) * yy)


def _box(rng: np.random.Generator, size: int, centre: np.ndarray,
         axes: np.ndarray) -> np.ndarray:
    """A filled rotated rectangle (the second class: corners tell it from an ellipse)."""
    mask = np.zeros((size, size), dtype=np.uint8)
    corners = cv2.boxPoints(((float(centre[0]), float(centre[1])),
                             (float(2 * axes[0]), float(2 * axes[1])), rng.uniform(0.0, 90.0)))
    cv2.fillPoly(mask, [np.rint(corners).astype(np.int32)], 1)
    return mask.astype(bool)


def _ellipses(rng: np.random.Generator, size: int,
              n_kinds: int = 1) -> list[tuple[int, np.ndarray]]:
    """1-4 filled objects as (class, mask): ellipses, or with two kinds ellipses (0) and
    boxes (1); about half are placed touching the previous one."""
    masks: list[tuple[int, np.ndarray]] = []
    centre = radius = None
    for _ in range(rng.integers(1, MAX_OBJECTS + 1)):
        axes = rng.uniform(0.07, 0.2, size=2) * size
        if centre is not None and rng.random() < TOUCH_PROBABILITY:
            direction = rng.uniform(0.0, 2.0 * math.pi)
            gap = (radius + axes.mean()) * rng.uniform(0.7, 1.0)
            centre = centre + gap * np.array([math.cos(direction), math.sin(direction)])
        else:
            centre = rng.uniform(0.15, 0.85, size=2) * size
        centre = np.clip(centre, 2.0, size - 3.0)
        radius = axes.mean()
        if n_kinds > 1 and rng.random() < 0.5:
            masks.append((1, _box(rng, size, centre, axes * 0.8)))
            continue
        mask = np.zeros((size, size), dtype=np.uint8)
        cv2.ellipse(mask, (int(round(centre[0])), int(round(centre[1]))),
                    (max(2, int(round(axes[0]))), max(2, int(round(axes[1])))),
                    rng.uniform(0.0, 180.0), 0, 360, 1, thickness=-1)
        masks.append((0, mask.astype(bool)))
    return masks


def _visible(objects: list[np.ndarray]) -> list[np.ndarray]:
    """Each object's pixels that no later object covers (the instances a viewer sees), the
    ones left with no pixel dropped."""
    out, covered = [], np.zeros_like(objects[0]) if objects else None
    for mask in reversed(objects):
        visible = mask & ~covered
        covered |= mask
        if visible.any():
            out.append(visible)
    return out[::-1]


def _draw(rng: np.random.Generator, size: int, empty: bool, n_kinds: int = 1
          ) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """One image, each class's union mask and each object's visible pixels."""
    background = _background(rng, size)
    image = background.copy()
    unions = [np.zeros((size, size), dtype=bool) for _ in range(n_kinds)]
    objects = [] if empty else _ellipses(rng, size, n_kinds)
    for kind, mask in objects:
        # later objects on top; with two classes boxes are dimmer, as classes differ in
        # texture or brightness in real data
        low, high = LIFTS[kind] if n_kinds > 1 else (60.0, 130.0)
        image[mask] = background[mask] + rng.uniform(low, high)
        unions[kind] |= mask
    image += rng.normal(0.0, rng.uniform(4.0, 12.0), size=image.shape)
    return (np.clip(np.rint(image), 0, 255).astype(np.uint8), unions,
            _visible([mask for _, mask in objects]))


def write_shapes_competition(
    out_dir: str | Path,
    n_images: int = 240,
    size: int = 64,
    test_fraction: float = 0.25,
    seed: int = 0,
    empty_fraction: float = 0.3,
    classes: list[str] | None = None,
    instances: bool = False,
    rle_format: str = DEFAULT_FORMAT,
) -> None:
    """Write train.csv (id, rle), train/, test/, sample_submission.csv and solution.csv.

    The rle column is the union mask of each image in order "F" and ``rle_format``
    (:mod:`podium.tasks.segment.rle`); empty masks are "".
    Exactly ``round(empty_fraction * n_images)`` images hold no object. With two ``classes``
    (ellipses, then boxes) every CSV has a row per image and class: id, class, rle. With
    ``instances`` train.csv and solution.csv have a row per object (its visible pixels; an
    empty image has one row with an empty rle), as in DSB 2018, and the sample a row per
    image.
    """
    get_format(rle_format, "F")
    if instances and classes is not None:
        raise PodiumInputError("shapes competition: instances are one class; set classes "
                               "to null.")
    if classes is not None and len(classes) != 2:
        raise PodiumInputError(f"shapes competition: classes {classes!r} must name two "
                               "classes (ellipses, boxes), or be null for one.")
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise PodiumInputError(
            f"{out}: folder is not empty; the shapes competition is written to a new folder."
        )
    if size < 16:
        raise PodiumInputError(f"shapes competition: size {size} is too small; use 16 or more.")
    if not 0.0 < test_fraction < 1.0:
        raise PodiumInputError(
            f"shapes competition: test_fraction {test_fraction} must lie between 0 and 1."
        )
    if not 0.0 <= empty_fraction <= 1.0:
        raise PodiumInputError(
            f"shapes competition: empty_fraction {empty_fraction} must lie in [0, 1]."
        )
    n_test = round(test_fraction * n_images)
    if n_test < 1 or n_images - n_test < 1:
        raise PodiumInputError(
            f"shapes competition: {n_images} images at test_fraction {test_fraction} leave "
            "train or test empty; write more images."
        )
    rng = np.random.default_rng(seed)
    ids = np.array([f"img{i:04d}" for i in range(n_images)])
    empty = np.zeros(n_images, dtype=bool)
    empty[rng.permutation(n_images)[:round(empty_fraction * n_images)]] = True
    is_test = np.zeros(n_images, dtype=bool)
    is_test[rng.permutation(n_images)[:n_test]] = True
    rles, objects = [], []
    for i in range(n_images):
        image, masks, visible = _draw(rng, size, bool(empty[i]), len(classes or [None]))
        objects.append([rle_encode(m, "F", rle_format) for m in visible] or [""])
        split = out / ("test" if is_test[i] else "train")
        split.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(split / f"{ids[i]}.png")
        rles.append(join_rles([rle_encode(m, "F", rle_format) for m in masks]))
    rles = np.array(rles, dtype=object)
    tables = {"train.csv": (ids[~is_test], rles[~is_test]),
              "sample_submission.csv": (ids[is_test], np.full(is_test.sum(), "", dtype=object)),
              "solution.csv": (ids[is_test], rles[is_test])}
    for name, (image_ids, cells) in tables.items():
        write_csv(_rows(image_ids, cells, classes), out / name)
    if instances:  # rows per object instead of the union masks
        for name, chosen in (("train.csv", ~is_test), ("solution.csv", is_test)):
            rows = [(ids[i], rle) for i in np.flatnonzero(chosen) for rle in objects[i]]
            write_csv(pd.DataFrame(rows, columns=["id", "rle"]), out / name)
    log.info("wrote shapes competition%s: %d train, %d test images of %d px to %s",
             f" with classes {classes}" if classes else "", n_images - n_test, n_test, size, out)


def _rows(image_ids: np.ndarray, cells: np.ndarray, classes: list[str] | None) -> pd.DataFrame:
    """One row per image (id, rle), or with classes one per image and class (id, class, rle)."""
    if classes is None:
        return pd.DataFrame({"id": image_ids, "rle": cells})
    rows = [(image_id, name, rle) for image_id, cell in zip(image_ids, cells, strict=True)
            for name, rle in zip(classes, class_rles(cell, len(classes)), strict=True)]
    return pd.DataFrame(rows, columns=["id", "class", "rle"])


def make_job(job: StageJob) -> None:
    """The ``make_embedded_competition`` job of the shapes demo (240 images unless
    ``competition.embedded_max_images`` says otherwise); train.csv's folder is the
    competition folder."""
    settings = job.settings
    write_shapes_competition(Path(job.outputs["train_csv"]).parent,
                             n_images=settings["max_images"] or 240,
                             classes=settings["classes"],
                             instances=bool(settings["instances"]),
                             rle_format=settings["rle_format"])
