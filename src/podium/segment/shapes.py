"""The embedded segmentation demo: bright ellipses on a noisy, shaded background.

Generated rather than downloaded, so the segmentation path runs anywhere. Objects sometimes
touch or overlap (so instance splitting such as watershed has work), a share of images is
empty (so the empty-mask convention of the metrics matters), and the same seed writes the same
files byte for byte.
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
from podium.segment.rle import rle_encode
from podium.tables import write_csv

log = logging.getLogger(__name__)

MAX_OBJECTS = 4
TOUCH_PROBABILITY = 0.5  # chance that an object is placed against the previous one


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A dim base level plus a linear intensity ramp in a random direction."""
    base = rng.uniform(30.0, 70.0)
    angle = rng.uniform(0.0, 2.0 * math.pi)
    ramp = np.linspace(-0.5, 0.5, size)
    yy, xx = np.meshgrid(ramp, ramp, indexing="ij")
    return base + rng.uniform(0.0, 40.0) * (math.cos(angle) * xx + math.sin(angle) * yy)


def _ellipses(rng: np.random.Generator, size: int) -> list[np.ndarray]:
    """1-4 filled ellipse masks; about half are placed touching the previous one."""
    masks: list[np.ndarray] = []
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
        mask = np.zeros((size, size), dtype=np.uint8)
        cv2.ellipse(mask, (int(round(centre[0])), int(round(centre[1]))),
                    (max(2, int(round(axes[0]))), max(2, int(round(axes[1])))),
                    rng.uniform(0.0, 180.0), 0, 360, 1, thickness=-1)
        masks.append(mask.astype(bool))
    return masks


def _draw(rng: np.random.Generator, size: int, empty: bool) -> tuple[np.ndarray, np.ndarray]:
    """One image and its union mask."""
    background = _background(rng, size)
    image = background.copy()
    union = np.zeros((size, size), dtype=bool)
    for mask in [] if empty else _ellipses(rng, size):
        image[mask] = background[mask] + rng.uniform(60.0, 130.0)  # later objects on top
        union |= mask
    image += rng.normal(0.0, rng.uniform(4.0, 12.0), size=image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), union


def write_shapes_competition(
    out_dir: str | Path,
    n_images: int = 240,
    size: int = 64,
    test_fraction: float = 0.25,
    seed: int = 0,
    empty_fraction: float = 0.3,
) -> None:
    """Write train.csv (id, rle), train/, test/, sample_submission.csv and solution.csv.

    The rle column is the union mask of each image in order "F"; empty masks are "".
    Exactly ``round(empty_fraction * n_images)`` images hold no object.
    """
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
    rles = []
    for i in range(n_images):
        image, mask = _draw(rng, size, bool(empty[i]))
        split = out / ("test" if is_test[i] else "train")
        split.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(split / f"{ids[i]}.png")
        rles.append(rle_encode(mask, order="F"))
    rles = np.array(rles, dtype=object)
    write_csv(pd.DataFrame({"id": ids[~is_test], "rle": rles[~is_test]}), out / "train.csv")
    write_csv(pd.DataFrame({"id": ids[is_test], "rle": ""}), out / "sample_submission.csv")
    write_csv(pd.DataFrame({"id": ids[is_test], "rle": rles[is_test]}), out / "solution.csv")
    log.info("wrote shapes competition: %d train, %d test images of %d px to %s",
             n_images - n_test, n_test, size, out)
