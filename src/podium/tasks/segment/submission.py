"""A segmentation submission: each test image's masks at its own size (or at the size the
competition scores, ``submission.mask_size``), run-length encoded in the competition's RLE
format (``competition.rle_format``) into the sample submission's rows (one per image, per
image and class, or per instance), checked string by string before it is written, and the
held-out score of the embedded demo at the same size."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from podium.errors import PodiumInputError
from podium.glue import StageJob
from podium.metrics.masks import as_masks, mean_dice, mean_instance_average_precision
from podium.submit.leaderboard import best_entry
from podium.submit.score import write_score
from podium.submit.submission import read_sample
from podium.tables import write_csv
from podium.task import TaskSpec
from podium.tasks.segment.classes import ClassRows
from podium.tasks.segment.instances import instance_labels, instance_rows, labels_of, resize_labels
from podium.tasks.segment.masks import to_size
from podium.tasks.segment.options import SegmentOptions
from podium.tasks.segment.rle import DEFAULT_FORMAT, rle_decode, rle_encode

log = logging.getLogger(__name__)

MAX_REPORTED = 20


def check_mask_size(mask_size: object) -> tuple[int, int] | None:
    """``submission.mask_size`` as ``(height, width)``, or None for each image's own size."""
    if mask_size is None:
        return None
    try:
        height, width = mask_size
        ok = all(isinstance(v, int | np.integer) and not isinstance(v, bool) and v >= 1
                 for v in (height, width))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise PodiumInputError(f"config key submission.mask_size: {mask_size!r} is not "
                               "[height, width] in pixels (or null for each image's size).")
    return int(height), int(width)


def scored_sizes(sizes: pd.DataFrame, mask_size: object = None) -> pd.DataFrame:
    """``id -> (height, width)`` each image's masks are submitted and scored at: its own size,
    or ``mask_size`` for every image."""
    size_of = sizes.set_index("id")[["height", "width"]].astype(int)
    fixed = check_mask_size(mask_size)
    if fixed is not None:
        size_of = size_of.assign(height=fixed[0], width=fixed[1])
    return size_of


def encode_test_masks(maps: np.ndarray, test_ids: pd.Series, sizes: pd.DataFrame,
                      order: str, rle_format: str = DEFAULT_FORMAT,
                      mask_size: object = None) -> dict[str, list[str]]:
    """``id -> [rle of each class]`` for packed ``N x K x S x S`` maps, at each image's size
    or ``mask_size``: probabilities are resized (:func:`~podium.tasks.segment.masks.to_size`) and
    then thresholded (a smoother edge than resizing a mask); 0/1 masks are resized as masks."""
    size_of = scored_sizes(sizes, mask_size)
    out = {}
    for image_id, planes in zip(test_ids, maps, strict=True):
        height, width = (int(v) for v in size_of.loc[image_id])
        encoded = []
        for packed in planes:
            full = to_size(packed if packed.dtype == np.uint8 else packed.astype(np.float32),
                           height, width)
            mask = as_masks(full)
            encoded.append(rle_encode(mask, order, rle_format))
        out[image_id] = encoded
    return out


def check_mask_submission(submission: pd.DataFrame, spec: TaskSpec, sizes: pd.DataFrame,
                          mask_size: object = None, path: object = "submission") -> None:
    """Refuse a submission unless every mask string decodes, under the competition's RLE
    format and pixel order, at its image's size (or ``mask_size``): the last check before it
    is written, so a wrong format or size never reaches the leaderboard. Problems name the
    line (the header is line 1), the column and the id."""
    size_of = scored_sizes(sizes, mask_size)
    images, _ = ClassRows.of(spec).split(submission, path)
    options = SegmentOptions.of(spec)
    problems = []
    for row, (image_id, rle) in enumerate(zip(images, submission[spec.target], strict=True)):
        where = (f"{path} line {row + 2}, column {spec.target!r}, "
                 f"{spec.id_column} {submission[spec.id_column].iloc[row]!r}")
        if image_id not in size_of.index:
            problems.append(f"{where}: image {image_id!r} is not a test image")
            continue
        shape = tuple(int(v) for v in size_of.loc[image_id])
        try:
            rle_decode(rle, shape, *options.codec)
        except ValueError as err:
            problems.append(f"{where}: not a {options.rle_format} encoding (mask_order "
                            f"{options.mask_order}) of a {shape[0]}x{shape[1]} mask: {err}")
    if problems:
        more = (f"\n  ... and {len(problems) - MAX_REPORTED} more"
                if len(problems) > MAX_REPORTED else "")
        raise PodiumInputError(f"{path}: {len(problems)} mask strings do not decode; nothing "
                               "was written:\n  " + "\n  ".join(problems[:MAX_REPORTED]) + more)


def _row_classes(table: pd.DataFrame, spec: TaskSpec, path: object
                 ) -> tuple[pd.Series, np.ndarray]:
    """Each row's image id and class index (0 for rows that are images)."""
    images, names = ClassRows.of(spec).split(table, path)
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
                       sizes: pd.DataFrame, spec: TaskSpec, mask_size: object = None) -> dict:
    """Mean Dice over the solution's rows (images, or image and class pairs) of the
    submitted masks against the solution's (both empty: 1). With ``mask_size`` the
    submission is decoded at that size and the solution, given at each image's own size, is
    resized to it the way the submission's masks are
    (:func:`~podium.tasks.segment.masks.to_size`)."""
    read = {"dtype": str, "keep_default_na": False}
    options = SegmentOptions.of(spec)
    keys = [spec.id_column] + ([options.class_column] if options.class_column else [])
    merged = pd.read_csv(solution_path, **read).merge(
        pd.read_csv(submission_path, **read), on=keys, suffixes=("_true", "_pred"),
        validate="one_to_one")
    images, _ = ClassRows.of(spec).split(merged, solution_path)
    own, scored = scored_sizes(sizes), scored_sizes(sizes, mask_size)
    codec = options.codec
    scores = []
    for image_id, true, pred in zip(images, merged[f"{spec.target}_true"],
                                    merged[f"{spec.target}_pred"], strict=True):
        shape = tuple(int(v) for v in scored.loc[image_id])
        truth = rle_decode(true, tuple(int(v) for v in own.loc[image_id]), *codec)
        scores.append(mean_dice([rle_decode(pred, shape, *codec)], [to_size(truth, *shape)]))
    return {"metric": "dice", "score": float(np.mean(scores)), "n": int(len(merged))}


def instance_submission(maps: np.ndarray, test_ids: pd.Series, sizes: pd.DataFrame,
                        sample: pd.DataFrame, spec: TaskSpec, mask_size: object = None
                        ) -> pd.DataFrame:
    """DSB 2018's format: one row per predicted instance at the image's own size or
    ``mask_size`` (labels resized by nearest neighbour; ``id, ""`` for an image with none),
    images in the sample submission's order, its columns kept."""
    labels = labels_of(maps)
    size_of = scored_sizes(sizes, mask_size)
    codec = SegmentOptions.of(spec).codec
    rows_of = {}
    for image_id, packed in zip(test_ids, labels, strict=True):
        height, width = (int(v) for v in size_of.loc[image_id])
        rows_of[image_id] = instance_rows(resize_labels(packed, height, width), image_id,
                                          *codec)
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
                    sizes: pd.DataFrame, spec: TaskSpec, mask_size: object = None) -> dict:
    """DSB 2018's score of a submission against a solution with a row per true instance:
    mean over the solution's images of the average precision over IoU thresholds. With
    ``mask_size`` the true labels (at each image's size) are resized to it by nearest
    neighbour, as the submitted ones were."""
    read = {"dtype": str, "keep_default_na": False}
    truth = pd.read_csv(solution_path, **read).groupby(spec.id_column, sort=False)[spec.target]
    submitted = pd.read_csv(submission_path, **read).groupby(spec.id_column)[spec.target]
    predicted = {image_id: list(rles) for image_id, rles in submitted}
    own, scored = scored_sizes(sizes), scored_sizes(sizes, mask_size)
    codec = SegmentOptions.of(spec).codec
    preds, trues = [], []
    for image_id, rles in truth:
        shape = tuple(int(v) for v in scored.loc[image_id])
        true = instance_labels(list(rles), tuple(int(v) for v in own.loc[image_id]), *codec)
        trues.append(resize_labels(true, *shape))
        preds.append(instance_labels(predicted.get(image_id, []), shape, *codec))
    return {"metric": "instance_map", "score": mean_instance_average_precision(preds, trues),
            "n": len(trues)}


def submit_job(job: StageJob) -> pd.DataFrame:
    """The ``write_submission`` job of a segmentation competition: the leaderboard's best
    entry's test masks at each image's size (or ``submission.mask_size``), run-length encoded
    in the competition's format; every string is checked before writing."""
    i, out = job.inputs, job.outputs["submission"]
    spec = TaskSpec.load(i["task"])
    mask_size = job.options["mask_size"]
    best, test_file = best_entry(pd.read_csv(i["leaderboard"]), job.options["names"],
                                 i["tests"])
    maps = np.load(test_file)
    test_ids = pd.read_parquet(i["test_index"])["id"]
    sizes = pd.read_parquet(i["manifest"])
    sample = read_sample(i["sample"], job.options["encoding"])
    options = SegmentOptions.of(spec)
    if options.instances:  # a row per instance; probability maps split by the default watershed
        submission = instance_submission(maps, test_ids, sizes, sample, spec, mask_size)
        described = (f"{int((submission[spec.target] != '').sum())} instances in "
                     f"{len(test_ids)} test images")
    else:
        rle_of = encode_test_masks(maps, test_ids, sizes, *options.codec, mask_size)
        submission = segmentation_submission(sample, spec, rle_of, i["sample"])
        described = (f"{sum(any(v) for v in rle_of.values())} of {len(rle_of)} test images "
                     "with a mask")
    check_mask_submission(submission, spec, sizes, mask_size, out)
    write_csv(submission, out)
    log.info("submission from %s: %s, %s RLE%s", best, described, options.rle_format,
             f" at {mask_size[0]}x{mask_size[1]}" if mask_size else "")
    return submission


def score_job(job: StageJob) -> dict:
    """The ``score_submission`` job of an embedded segmentation demo, at the size the
    submission was written at."""
    i = job.inputs
    spec = TaskSpec.load(i["task"])
    scorer = score_instances if SegmentOptions.of(spec).instances else score_segmentation
    score = scorer(i["submission"], i["solution"], pd.read_parquet(i["manifest"]), spec,
                   job.options["mask_size"])
    write_score(score, job.outputs["score"], "rows")
    return score
