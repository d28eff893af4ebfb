"""The embedded default competition: scikit-learn's UCI handwritten digits as a Kaggle folder.

scikit-learn ships the 1,797 real 8x8 images, so the default runs with no download. The split
is stratified and seeded, so every machine writes the same folder, byte for byte.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from podium.errors import PodiumInputError
from podium.glue import StageJob
from podium.tables import write_csv

log = logging.getLogger(__name__)


def digit_tags(digit: int) -> str:
    """The multilabel demo's labels of a digit: parity, and whether it is large (5-9), has a
    closed loop, or is prime. Every digit gets at least its parity; the sets overlap."""
    digit = int(digit)
    tags = ["even" if digit % 2 == 0 else "odd"]
    tags += [tag for tag, members in (("large", (5, 6, 7, 8, 9)), ("loop", (0, 6, 8, 9)),
                                      ("prime", (2, 3, 5, 7))) if digit in members]
    return " ".join(sorted(tags))


def write_digits_competition(
    out_dir: str | Path,
    test_fraction: float = 0.2,
    seed: int = 0,
    max_images: int | None = None,
    multilabel: bool = False,
) -> None:
    """Write train.csv, train/, test/, sample_submission.csv and a held-out solution.csv.

    ``max_images`` keeps a stratified subset, for tiny test configs. ``multilabel`` labels
    each image with its :func:`digit_tags` instead of the digit (the multilabel demo).
    """
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise PodiumInputError(
            f"{out}: folder is not empty; the digits competition is written to a new folder."
        )
    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)
    labels = digits.target
    ids = np.array([f"digit_{i:04d}" for i in range(len(labels))])
    index = np.arange(len(labels))
    if max_images is not None and max_images < len(index):
        index, _ = train_test_split(
            index, train_size=max_images, stratify=labels, random_state=seed
        )
        index = np.sort(index)
    n_classes = len(np.unique(labels))
    n_test = max(n_classes, math.ceil(test_fraction * len(index)))
    if len(index) - n_test < n_classes:
        raise PodiumInputError(
            f"config key competition.embedded_max_images: {len(index)} images are too few to "
            f"hold every one of the {n_classes} classes in both train and test."
        )
    train_idx, test_idx = train_test_split(
        index, test_size=n_test, stratify=labels[index], random_state=seed
    )
    train_idx, test_idx = np.sort(train_idx), np.sort(test_idx)
    for split, rows in (("train", train_idx), ("test", test_idx)):
        (out / split).mkdir(parents=True, exist_ok=True)
        for i in rows:
            Image.fromarray(images[i]).save(out / split / f"{ids[i]}.png")
    written = np.array([digit_tags(d) for d in labels]) if multilabel else labels
    write_csv(pd.DataFrame({"id": ids[train_idx], "label": written[train_idx]}),
              out / "train.csv")
    write_csv(pd.DataFrame({"id": ids[test_idx], "label": written[0]}),
              out / "sample_submission.csv")
    write_csv(pd.DataFrame({"id": ids[test_idx], "label": written[test_idx]}),
              out / "solution.csv")
    log.info("wrote digits competition: %d train, %d test images to %s",
             len(train_idx), len(test_idx), out)


def make_job(job: StageJob) -> None:
    """The ``make_embedded_competition`` job of the digits demos (``digits``, and
    ``digits_multilabel`` with its tags); train.csv's folder is the competition folder."""
    settings = job.settings
    write_digits_competition(Path(job.outputs["train_csv"]).parent,
                             max_images=settings["max_images"],
                             multilabel=settings["name"] == "digits_multilabel")
