"""Leaderboard entries of a segmentation competition: models, blends and post-processed
variants, each as out-of-fold and test probability maps plus ``cv.json``.

Maps are float16 ``N x K x S x S`` arrays at the packed size, one plane per mask class
(``oof_probs.npy`` in :class:`SegmentTruth` order, ``test_probs.npy`` in packed test order);
post-processed entries hold 0/1 masks in the same files, ``instances`` entries int32 instance
labels (``N x 1 x S x S``). Every entry is scored the same way as
a classification entry (the metric per fold, then mean and std), here Dice per (image, class)
pair averaged, the metric of Kaggle's segmentation competitions (per-image Dice for one class),
so one leaderboard ranks them all; in an instance competition the DSB instance mAP instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from podium.ensemble.entry import fold_summary, write_entry_files
from podium.glue import StageJob
from podium.metrics import require_finite
from podium.metrics.masks import mean_instance_average_precision, pair_dice
from podium.tables import load_packed, write_npy
from podium.tasks.segment.classes import unpack_bits
from podium.tasks.segment.instances import (
    apply_watershed,
    fit_watershed_fold_by_fold,
    labels_of,
)
from podium.tasks.segment.postprocess import (
    apply_postprocess,
    fit_postprocess_fold_by_fold,
)


@dataclass(frozen=True)
class SegmentTruth:
    """The validated train images (fold >= 0) in packed-row order, with folds and packed masks
    (bit k: class k; :meth:`class_masks` unpacks them)."""

    ids: np.ndarray
    rows: np.ndarray
    fold: np.ndarray
    masks: np.ndarray
    instances: np.ndarray | None = None  # int32 labels in an instance competition

    @classmethod
    def load(cls, folds_csv: str | Path, train_index: str | Path, masks_array: str | Path,
             instances_array: str | Path | None = None) -> SegmentTruth:
        index = pd.read_parquet(train_index).merge(
            pd.read_csv(folds_csv, dtype={"id": str}), on="id", how="inner")
        index = index[index["fold"] >= 0].sort_values("row")
        rows = index["row"].to_numpy()
        masks = load_packed(masks_array)[rows]
        instances = (None if instances_array is None
                     else load_packed(instances_array)[rows])
        return cls(index["id"].to_numpy(), rows, index["fold"].to_numpy(), masks, instances)

    @property
    def n_folds(self) -> int:
        return int(self.fold.max()) + 1

    def class_masks(self, n_classes: int) -> np.ndarray:
        """``N x K x S x S`` 0/1 truth, one plane per mask class."""
        return unpack_bits(self.masks, n_classes)


def _instance_summary(name: str, kind: str, truth: SegmentTruth,
                      maps: np.ndarray) -> dict[str, Any]:
    labels = labels_of(maps)
    scores = [mean_instance_average_precision(list(labels[truth.fold == k]),
                                              list(truth.instances[truth.fold == k]))
              for k in range(truth.n_folds)]
    summary = fold_summary(name, kind, "instance_map", scores,
                           mean_instance_average_precision(list(labels), list(truth.instances)))
    summary["oof_dice"] = pair_dice((labels > 0)[:, None].astype(np.uint8),
                                    truth.class_masks(1))
    return summary


def cv_summary(name: str, kind: str, truth: SegmentTruth, maps: np.ndarray) -> dict[str, Any]:
    """``cv.json``: mean Dice over (image, class) pairs of each fold, their mean and std, the
    pooled Dice and, with several classes, each class's. In an instance competition the
    DSB instance mAP instead (probability maps split by the default watershed), with the
    foreground Dice beside it."""
    if truth.instances is not None:
        return _instance_summary(name, kind, truth, maps)
    masks = truth.class_masks(maps.shape[1])
    scores = [pair_dice(maps[truth.fold == k], masks[truth.fold == k])
              for k in range(truth.n_folds)]
    summary = fold_summary(name, kind, "dice", scores, pair_dice(maps, masks))
    if maps.shape[1] > 1:
        summary["class_scores"] = [pair_dice(maps[:, k:k + 1], masks[:, k:k + 1])
                                   for k in range(maps.shape[1])]
    return summary


def write_entry(name: str, kind: str, truth: SegmentTruth, oof: np.ndarray, test: np.ndarray,
                test_ids: np.ndarray, out: Any, details: dict | None = None) -> dict[str, Any]:
    """Write one entry: its maps (``oof_probs.npy``, ``test_probs.npy``) beside the files
    of every entry (:mod:`podium.ensemble.entry`): ``oof.parquet`` (id, fold),
    ``test.parquet`` (id) and ``cv.json``."""
    require_finite(oof, f"{kind} {name}: OOF maps")
    require_finite(test, f"{kind} {name}: test maps")
    summary = cv_summary(name, kind, truth, oof)
    dtype = oof.dtype if oof.dtype in (np.uint8, np.int32) else np.float16
    write_npy(oof.astype(dtype), out["oof_probs"])
    write_npy(test.astype(dtype), out["test_probs"])
    return write_entry_files(summary, pd.DataFrame({"id": truth.ids, "fold": truth.fold}),
                             pd.DataFrame({"id": test_ids}), out, details)


def gather_folds(truth: SegmentTruth, fold_probs: list[str | Path],
                 fold_indexes: list[str | Path], fold_tests: list[str | Path]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """A model's OOF maps in truth order (each row from the fold that validated it) and its
    test maps averaged over the folds' models."""
    position = {image_id: i for i, image_id in enumerate(truth.ids)}
    oof = None
    seen = np.zeros(len(truth.ids), dtype=bool)
    for probs_path, index_path in zip(fold_probs, fold_indexes, strict=True):
        probs = np.load(probs_path)
        require_finite(probs, f"OOF maps {probs_path}")
        where = np.array([position[i] for i in pd.read_parquet(index_path)["id"]], dtype=int)
        if oof is None:
            oof = np.zeros((len(truth.ids), *probs.shape[1:]), dtype=np.float32)
        oof[where] = probs
        seen[where] = True
    if oof is None or not seen.all():
        raise ValueError(f"{int((~seen).sum())} train images have no OOF prediction; rerun "
                         "the model's folds.")
    tests = [np.load(p).astype(np.float32) for p in fold_tests]
    for path, maps in zip(fold_tests, tests, strict=True):
        require_finite(maps, f"test maps {path}")
    return oof, np.mean(tests, axis=0)


def mean_blend(oofs: list[np.ndarray], tests: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The pixel-wise mean of the models' probability maps."""
    return (np.mean([o.astype(np.float32) for o in oofs], axis=0),
            np.mean([t.astype(np.float32) for t in tests], axis=0))


def _readable(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k != "empty_classifier"}


def postprocess_entry(truth: SegmentTruth, oof: np.ndarray, test: np.ndarray,
                      params: dict[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Threshold, minimum area and the empty-mask classifier of each mask class (Severstal's
    per-class recipe), fitted fold by fold on OOF (so the entry's CV is honest) and once on
    every OOF image for the test masks."""
    options = dict(params or {})
    masks = truth.class_masks(oof.shape[1])
    oof_masks = np.empty(oof.shape, dtype=np.uint8)
    test_masks = np.empty(test.shape, dtype=np.uint8)
    classes = []
    for k in range(oof.shape[1]):
        oof_masks[:, k], report = fit_postprocess_fold_by_fold(
            oof[:, k].astype(np.float32), masks[:, k], truth.fold, fit_all=True, **options)
        fitted = report["fitted"]
        test_masks[:, k] = apply_postprocess(test[:, k].astype(np.float32), fitted)
        classes.append({"class": k, "dice_before": report["dice_before"],
                        "dice_after": report["dice_after"], "fitted": _readable(fitted),
                        "per_fold": [_readable(f) for f in report["folds"]]})
    details = {"dice_before": pair_dice(oof, masks), "dice_after": pair_dice(oof_masks, masks),
               "classes": classes}
    return oof_masks, test_masks, details


def instance_entry(truth: SegmentTruth, oof: np.ndarray, test: np.ndarray,
                   params: dict[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Watershed instances (threshold, markers, minimum area) fitted by the instance mAP fold by
    fold on OOF (an honest CV) and once on every OOF image for the test labels; int32
    ``N x 1 x S x S`` label maps."""
    if truth.instances is None:
        raise ValueError("instance post-processing needs the packed instance labels")
    options = dict(params or {})
    oof_labels, report = fit_watershed_fold_by_fold(
        oof[:, 0].astype(np.float32), truth.instances, truth.fold, fit_all=True, **options)
    fitted = report["fitted"]
    test_labels = apply_watershed(test[:, 0].astype(np.float32), fitted)
    details = {"map_before": report["map_before"], "map_after": report["map_after"],
               "fitted": fitted, "per_fold": report["folds"]}
    return oof_labels[:, None], test_labels[:, None], details


def gather_job(job: StageJob) -> dict[str, Any]:
    """A segmentation model's ``gather_model`` job: the folds' OOF maps for every validated
    image and their test maps averaged, written as the model's entry."""
    i = job.inputs
    truth = _truth_of(job)
    oof, test = gather_folds(truth, i["fold_oof_probs"], i["fold_oof_index"], i["fold_probs"])
    return write_entry(job.name, "model", truth, oof, test, _test_ids(job), job.outputs)


def _truth_of(job: StageJob) -> SegmentTruth:
    i = job.inputs
    return SegmentTruth.load(i["folds"], i["train_index"], i["masks"], i.get("instances"))


def _test_ids(job: StageJob) -> np.ndarray:
    return pd.read_parquet(job.inputs["test_index"])["id"].to_numpy()


def blend_job(job: StageJob) -> dict[str, Any]:
    """A segmentation competition's ``blend_models`` job: the pixel-wise mean of the models'
    probability maps (the stage offers ``mean`` blends only; the config check refuses others)."""
    i = job.inputs
    oof, test = mean_blend([np.load(p) for p in i["oofs"]], [np.load(p) for p in i["tests"]])
    return write_entry(job.name, "blend", _truth_of(job), oof, test, _test_ids(job),
                       job.outputs, details={"models": len(i["oofs"])})


def postprocess_job(job: StageJob) -> dict[str, Any]:
    """A segmentation competition's ``postprocess_predictions`` job: threshold, minimum area
    and an empty-mask classifier (method ``masks``), or watershed instances (``instances``),
    fitted fold by fold on OOF (honest CV), then on all OOF for the test masks."""
    truth = _truth_of(job)
    fit = instance_entry if job.settings["method"] == "instances" else postprocess_entry
    oof_masks, test_masks, details = fit(truth, np.load(job.inputs["oof"]),
                                         np.load(job.inputs["test"]),
                                         job.settings.get("params") or {})
    return write_entry(job.name, "postprocess", truth, oof_masks, test_masks, _test_ids(job),
                       job.outputs, details=details)
