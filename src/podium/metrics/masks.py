"""Mask metrics, scored per image and then averaged, as Kaggle's leaderboards do: the metric
core's definitions of Dice, IoU and DSB 2018's instance mAP, which the registry
(:mod:`podium.metrics`) scores with and the segmentation task builds on.

Dice and IoU follow the SIIM / Severstal convention: an image where prediction and truth are
both empty scores ``empty_score`` (1.0), so predicting "no mask" correctly is rewarded.
:func:`instance_average_precision` is the DSB 2018 nuclei metric on instance label maps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

DSB_THRESHOLDS = np.arange(0.5, 1.0, 0.05)

MASK_THRESHOLD = 0.5
"""A probability map is a mask where ``p >= MASK_THRESHOLD``: validation, CV, the registry's
Dice and the submission all cut here (post-processing fits its own threshold)."""

MaskBatch = np.ndarray | Sequence[np.ndarray]


def _binary_pair(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, true = np.asarray(pred), np.asarray(true)
    if pred.shape != true.shape:
        raise ValueError(f"prediction mask shape {pred.shape} differs from truth {true.shape}.")
    return pred != 0, true != 0


def dice_from_counts(overlap: np.ndarray, predicted: np.ndarray, true: np.ndarray,
                     empty_score: float = 1.0) -> np.ndarray:
    """Dice 2|P∩T| / (|P|+|T|) of mask pairs from their pixel counts, ``empty_score`` where
    both are empty: podium's one Dice. The metric below and post-processing's search (which
    counts pixels per component instead of re-thresholding masks) both compute it here."""
    overlap, predicted, true = (np.asarray(a, dtype=np.float64)
                                for a in (overlap, predicted, true))
    total = predicted + true
    return np.where(total == 0, float(empty_score), 2.0 * overlap / np.maximum(total, 1))


def image_dice(preds: np.ndarray, trues: np.ndarray, empty_score: float = 1.0) -> np.ndarray:
    """Dice of each mask pair of two ``N x ...`` stacks (nonzero = foreground)."""
    preds, trues = _binary_pair(preds, trues)
    preds, trues = preds.reshape(len(preds), -1), trues.reshape(len(trues), -1)
    return dice_from_counts(np.logical_and(preds, trues).sum(axis=1), preds.sum(axis=1),
                            trues.sum(axis=1), empty_score)


def dice(pred: np.ndarray, true: np.ndarray, empty_score: float = 1.0) -> float:
    """Dice of one binary mask pair (nonzero = foreground)."""
    return float(image_dice(np.asarray(pred)[None], np.asarray(true)[None], empty_score)[0])


def iou(pred: np.ndarray, true: np.ndarray, empty_score: float = 1.0) -> float:
    """Intersection over union |P∩T| / |P∪T| of one binary mask pair."""
    pred, true = _binary_pair(pred, true)
    union = int(np.logical_or(pred, true).sum())
    if union == 0:
        return float(empty_score)
    return int(np.logical_and(pred, true).sum()) / union


def _check_counts(preds: MaskBatch, trues: MaskBatch) -> None:
    if len(preds) != len(trues):
        raise ValueError(f"{len(preds)} predicted masks but {len(trues)} true masks.")
    if len(preds) == 0:
        raise ValueError("no masks to score.")


def _per_image(preds: MaskBatch, trues: MaskBatch,
               score: Callable[[np.ndarray, np.ndarray], float]) -> float:
    _check_counts(preds, trues)
    return float(np.mean([score(p, t) for p, t in zip(preds, trues, strict=True)]))


def mean_dice(preds: MaskBatch, trues: MaskBatch, empty_score: float = 1.0) -> float:
    """Dice per image, then the mean over images (N x H x W arrays or lists of masks)."""
    if isinstance(preds, np.ndarray) and isinstance(trues, np.ndarray):  # one stack: at once
        _check_counts(preds, trues)
        return float(image_dice(preds, trues, empty_score).mean())
    return _per_image(preds, trues, lambda p, t: dice(p, t, empty_score))


def mean_iou(preds: MaskBatch, trues: MaskBatch, empty_score: float = 1.0) -> float:
    """IoU per image, then the mean over images."""
    return _per_image(preds, trues, lambda p, t: iou(p, t, empty_score))


def as_masks(maps: np.ndarray) -> np.ndarray:
    """0/1 masks of probability maps (``>= MASK_THRESHOLD``); uint8 or bool masks as they are."""
    maps = np.asarray(maps)
    if maps.dtype in (np.uint8, np.bool_):
        return maps.astype(np.uint8, copy=False)
    return (maps >= MASK_THRESHOLD).astype(np.uint8)


def _pairs(stack: np.ndarray) -> np.ndarray:
    """``N x K x S x S`` (or ``N x S x S``, one class) as ``N*K`` masks, image by image."""
    stack = np.asarray(stack)
    return stack if stack.ndim == 3 else stack.reshape(-1, *stack.shape[2:])


def pair_dice(maps: np.ndarray, truth: np.ndarray) -> float:
    """Mean Dice over (image, class) pairs of maps (probabilities at :data:`MASK_THRESHOLD`,
    or 0/1 masks) and 0/1 truth, both ``N x K x S x S`` (or ``N x S x S``): Severstal's and
    Understanding Clouds' metric, per-image Dice (SIIM) for one class."""
    return float(mean_dice(_pairs(as_masks(maps)), _pairs(truth)))


def pair_iou(maps: np.ndarray, truth: np.ndarray) -> float:
    """Mean IoU over (image, class) pairs, cut like :func:`pair_dice`."""
    return float(mean_iou(_pairs(as_masks(maps)), _pairs(truth)))


def mean_dice_per_class(preds: MaskBatch, trues: MaskBatch, n_classes: int,
                        empty_score: float = 1.0) -> float:
    """Dice of every (image, class) pair averaged, Severstal style.

    Masks hold class ids 0..n_classes, 0 being background; ``n_classes`` counts the
    foreground classes 1..K that are scored.
    """
    if n_classes < 1:
        raise ValueError(f"n_classes must count at least one foreground class; got {n_classes}.")

    def classes(p: np.ndarray, t: np.ndarray) -> float:
        p, t = np.asarray(p), np.asarray(t)
        for name, mask in (("prediction", p), ("truth", t)):
            if mask.size and (mask.min() < 0 or mask.max() > n_classes):
                raise ValueError(
                    f"{name} mask holds class ids {mask.min()}..{mask.max()}; expected "
                    f"0..{n_classes} (0 = background) for n_classes={n_classes}."
                )
        return float(np.mean([dice(p == c, t == c, empty_score)
                              for c in range(1, n_classes + 1)]))

    return _per_image(preds, trues, classes)


def _instance_ious(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """IoU matrix (predicted instances x true instances) from one joint histogram."""
    _, p_index = np.unique(pred, return_inverse=True)
    _, t_index = np.unique(true, return_inverse=True)
    # np.unique sorts, so background 0 (when present) is index 0; shift so it always is.
    p_index = p_index.ravel() + (0 if (pred == 0).any() else 1)
    t_index = t_index.ravel() + (0 if (true == 0).any() else 1)
    n_p, n_t = int(p_index.max(initial=0)) + 1, int(t_index.max(initial=0)) + 1
    joint = np.bincount(p_index * n_t + t_index, minlength=n_p * n_t).reshape(n_p, n_t)
    area_p, area_t = joint.sum(axis=1), joint.sum(axis=0)
    inter = joint[1:, 1:]
    union = area_p[1:, None] + area_t[None, 1:] - inter
    return inter / union


def _check_labels(labels: np.ndarray, name: str) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.dtype != bool and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"{name} must be an integer instance label map (0 = background); got dtype "
            f"{labels.dtype}. Label a binary mask with scipy.ndimage.label first."
        )
    if labels.size and labels.min() < 0:
        raise ValueError(f"{name} holds a negative label {labels.min()}; labels are 0, 1, 2...")
    return labels.astype(np.int64, copy=False)


def instance_average_precision(pred_labels: np.ndarray, true_labels: np.ndarray,
                               thresholds: Sequence[float] | np.ndarray = DSB_THRESHOLDS
                               ) -> float:
    """DSB 2018 score of one image: TP / (TP + FP + FN) averaged over IoU thresholds.

    A predicted and a true instance match when their IoU is strictly above the threshold;
    matching is one-to-one (above 0.5 a match is unique anyway). Both maps empty score 1.0,
    one empty scores 0.0.
    """
    pred = _check_labels(pred_labels, "predicted labels")
    true = _check_labels(true_labels, "true labels")
    if pred.shape != true.shape:
        raise ValueError(f"predicted label map shape {pred.shape} differs from {true.shape}.")
    thresholds = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    if thresholds.size == 0:
        raise ValueError("instance_average_precision needs at least one IoU threshold.")
    ious = _instance_ious(pred, true)
    n_pred, n_true = ious.shape
    if n_pred == 0 and n_true == 0:
        return 1.0
    scores = []
    for threshold in thresholds:
        matches = ious > threshold
        if (matches.sum(axis=0) > 1).any() or (matches.sum(axis=1) > 1).any():
            rows, cols = linear_sum_assignment(matches.astype(np.float64),
                                               maximize=True)
            tp = int(matches[rows, cols].sum())
        else:
            tp = int(matches.sum())
        scores.append(tp / (n_pred + n_true - tp))  # TP + FP + FN
    return float(np.mean(scores))


def mean_instance_average_precision(
    list_pred: Sequence[np.ndarray], list_true: Sequence[np.ndarray],
    thresholds: Sequence[float] | np.ndarray = DSB_THRESHOLDS,
) -> float:
    """The DSB 2018 leaderboard score: :func:`instance_average_precision` averaged over images."""
    return _per_image(list_pred, list_true,
                      lambda p, t: instance_average_precision(p, t, thresholds))
