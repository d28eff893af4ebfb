"""A segmentation submission: each test image's masks at its own size, run-length encoded in
the sample submission's format (one row per image, or per image and class), and the held-out
score of the embedded demo."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from podium.errors import PodiumInputError
from podium.segment.instances import instance_labels, instance_rows, labels_of, resize_labels
from podium.segment.masks import to_original_size
from podium.segment.metrics import mean_dice, mean_instance_average_precision
from podium.segment.rle import rle_decode, rle_encode
from podium.task import TaskSpec

THRESHOLD = 0.5


def encode_test_masks(maps: np.ndarray, test_ids: pd.Series, sizes: pd.DataFrame,
                      order: str) -> dict[str, list[str]]:
    """``id -> [rle of each class]`` for packed ``N x K x S x S`` maps: probabilities are
    resized to the image's size and then thresholded (a smoother edge than resizing a mask);
    0/1 masks are resized as masks."""
    size_of = sizes.set_index("id")[["height", "width"]]
    out = {}
    for image_id, planes in zip(test_ids, maps, strict=True):
        height, width = (int(v) for v in size_of.loc[image_id])
        encoded = []
        for packed in planes:
            full = to_original_size(packed if packed.dtype == np.uint8
                                    else packed.astype(np.float32), height, width)
            mask = full if full.dtype == np.uint8 else (full >= THRESHOLD).astype(np.uint8)
            encoded.append(rle_encode(mask, order))
        out[image_id] = encoded
    return out


def _row_classes(table: pd.DataFrame, spec: TaskSpec, path: object
                 ) -> tuple[pd.Series, np.ndarray]:
    """Each row's image id and class index (0 for rows that are images)."""
    images, names = spec.class_rows.split(table, path)
    if names is None:
        if spec.n_classes > 1:
            raise PodiumInputError(
                f"{path}: one row per image, but there are {spec.n_classes} mask classes; set "
                "competition.class_column or competition.class_separator to say how the "
                "sample submission names each row's class.")
        return images, np.zeros(len(table), dtype=np.int64)
    position = {c: k for k, c in enumerate(spec.classes)}
    unknown = ~names.isin(list(position))
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise PodiumInputError(
            f"{path} line {row + 2}: class {names.iloc[row]!r} is not one of the mask classes "
            f"{list(spec.classes)} the train masks have.")
    return images, names.map(position).to_numpy(dtype=np.int64)


def segmentation_submission(sample: pd.DataFrame, spec: TaskSpec,
                            rle_of: dict[str, list[str]], path: object = "sample submission"
                            ) -> pd.DataFrame:
    """The sample submission with its mask column filled, rows and order unchanged."""
    out = sample.copy()
    images, classes = _row_classes(out, spec, path)
    missing = sorted(set(images) - set(rle_of))
    if missing:
        raise ValueError(f"no prediction for {len(missing)} sample ids, e.g. {missing[:3]}")
    out[spec.target] = [rle_of[i][k] for i, k in zip(images, classes, strict=True)]
    return out


def score_segmentation(submission_path: str | Path, solution_path: str | Path,
                       sizes: pd.DataFrame, spec: TaskSpec) -> dict:
    """Mean Dice over the solution's rows (images, or image and class pairs) of the
    submitted masks against the solution's (both empty: 1)."""
    read = {"dtype": str, "keep_default_na": False}
    keys = [spec.id_column] + ([spec.class_column] if spec.class_column else [])
    merged = pd.read_csv(solution_path, **read).merge(
        pd.read_csv(submission_path, **read), on=keys, suffixes=("_true", "_pred"),
        validate="one_to_one")
    images, _ = spec.class_rows.split(merged, solution_path)
    size_of = sizes.set_index("id")[["height", "width"]]
    scores = []
    for image_id, true, pred in zip(images, merged[f"{spec.target}_true"],
                                    merged[f"{spec.target}_pred"], strict=True):
        shape = tuple(int(v) for v in size_of.loc[image_id])
        scores.append(mean_dice([rle_decode(pred, shape, spec.mask_order)],
                                [rle_decode(true, shape, spec.mask_order)]))
    return {"metric": "dice", "score": float(np.mean(scores)), "n": int(len(merged))}


def instance_submission(maps: np.ndarray, test_ids: pd.Series, sizes: pd.DataFrame,
                        sample: pd.DataFrame, spec: TaskSpec) -> pd.DataFrame:
    """DSB 2018's format: one row per predicted instance at the image's own size (``id, ""``
    for an image with none), images in the sample submission's order, its columns kept."""
    labels = labels_of(maps)
    size_of = sizes.set_index("id")[["height", "width"]]
    rows_of = {}
    for image_id, packed in zip(test_ids, labels, strict=True):
        height, width = (int(v) for v in size_of.loc[image_id])
        rows_of[image_id] = instance_rows(resize_labels(packed, height, width), image_id,
                                          spec.mask_order)
    missing = sorted(set(sample[spec.id_column]) - set(rows_of))
    if missing:
        raise ValueError(f"no prediction for {len(missing)} sample ids, e.g. {missing[:3]}")
    rows = [row for image_id in dict.fromkeys(sample[spec.id_column]) for row in
            rows_of[image_id]]
    out = pd.DataFrame(rows, columns=[spec.id_column, spec.target])
    extra = [c for c in sample.columns if c not in out.columns]
    if extra:  # other sample columns, as the sample gives them for the image
        first = sample.drop_duplicates(spec.id_column).set_index(spec.id_column)[extra]
        out = out.join(first, on=spec.id_column)
    return out[list(sample.columns)]


def score_instances(submission_path: str | Path, solution_path: str | Path,
                    sizes: pd.DataFrame, spec: TaskSpec) -> dict:
    """DSB 2018's score of a submission against a solution with a row per true instance:
    mean over the solution's images of the average precision over IoU thresholds."""
    read = {"dtype": str, "keep_default_na": False}
    truth = pd.read_csv(solution_path, **read).groupby(spec.id_column, sort=False)[spec.target]
    submitted = pd.read_csv(submission_path, **read).groupby(spec.id_column)[spec.target]
    predicted = {image_id: list(rles) for image_id, rles in submitted}
    size_of = sizes.set_index("id")[["height", "width"]]
    preds, trues = [], []
    for image_id, rles in truth:
        shape = tuple(int(v) for v in size_of.loc[image_id])
        trues.append(instance_labels(list(rles), shape, spec.mask_order))
        preds.append(instance_labels(predicted.get(image_id, []), shape, spec.mask_order))
    return {"metric": "instance_map", "score": mean_instance_average_precision(preds, trues),
            "n": len(trues)}
