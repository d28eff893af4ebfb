"""A segmentation submission: each test image's mask at its own size, run-length encoded in the
sample submission's format, and the held-out score of the embedded demo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from podium.segment.masks import to_original_size
from podium.segment.metrics import mean_dice
from podium.segment.rle import rle_decode, rle_encode
from podium.task import TaskSpec

THRESHOLD = 0.5


def encode_test_masks(maps: np.ndarray, test_ids: pd.Series, sizes: pd.DataFrame,
                      order: str) -> dict[str, str]:
    """``id -> rle`` for packed maps: probabilities are resized to the image's size and then
    thresholded (a smoother edge than resizing a mask); 0/1 masks are resized as masks."""
    size_of = sizes.set_index("id")[["height", "width"]]
    out = {}
    for image_id, packed in zip(test_ids, maps, strict=True):
        height, width = (int(v) for v in size_of.loc[image_id])
        full = to_original_size(packed if packed.dtype == np.uint8
                                else packed.astype(np.float32), height, width)
        mask = full if full.dtype == np.uint8 else (full >= THRESHOLD).astype(np.uint8)
        out[image_id] = rle_encode(mask, order)
    return out


def segmentation_submission(sample: pd.DataFrame, spec: TaskSpec, rle_of: dict[str, str]
                            ) -> pd.DataFrame:
    """The sample submission with its mask column filled, ids and order unchanged."""
    out = sample.copy()
    missing = sorted(set(out[spec.id_column]) - set(rle_of))
    if missing:
        raise ValueError(f"no prediction for {len(missing)} sample ids, e.g. {missing[:3]}")
    out[spec.target] = out[spec.id_column].map(rle_of)
    return out


def score_segmentation(submission_path: str | Path, solution_path: str | Path,
                       sizes: pd.DataFrame, spec: TaskSpec) -> dict:
    """Mean per-image Dice of the submitted masks against the solution's (both empty: 1)."""
    read = {"dtype": str, "keep_default_na": False}
    merged = pd.read_csv(solution_path, **read).merge(
        pd.read_csv(submission_path, **read), on=spec.id_column, suffixes=("_true", "_pred"),
        validate="one_to_one")
    size_of = sizes.set_index("id")[["height", "width"]]
    preds, truths = [], []
    for row in merged.itertuples(index=False):
        shape = tuple(int(v) for v in size_of.loc[getattr(row, spec.id_column)])
        truths.append(rle_decode(getattr(row, f"{spec.target}_true"), shape, spec.mask_order))
        preds.append(rle_decode(getattr(row, f"{spec.target}_pred"), shape, spec.mask_order))
    score = float(np.mean([mean_dice([p], [t]) for p, t in zip(preds, truths, strict=True)]))
    return {"metric": "dice", "score": score, "n": int(len(merged))}
