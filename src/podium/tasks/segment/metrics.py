"""The segment plug-in's metrics, registered in the one metric registry when the plug-in's
package is imported: mean Dice (early stopping, CV, post-processing, the leaderboard), IoU
and DSB 2018's instance mAP. Their definitions are the metric core's
(:mod:`podium.metrics.masks`, re-derived from the competitions' published metrics in
tests/references/)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from podium.metrics import LabelSpace, Metric, register_metric
from podium.tasks.segment import TASK


def _mask_metric(name: str) -> Callable[[np.ndarray, np.ndarray, LabelSpace], float]:
    """Mean Dice or IoU over (image, class) pairs of ``N x H x W`` or ``N x K x H x W`` maps
    (probabilities at 0.5, or 0/1 masks) against 0/1 truth; a pair empty in both scores 1.
    Dice: SIIM-ACR Pneumothorax, Severstal, Understanding Clouds; IoU: Airbus-style
    (podium.metrics.masks, imported late: it imports scipy, and the config check imports this
    module)."""
    def score(y: np.ndarray, p: np.ndarray, space: LabelSpace) -> float:
        from podium.metrics import masks

        return getattr(masks, f"pair_{name}")(p, y)

    return score


def _instance_map(y: np.ndarray, p: np.ndarray, space: LabelSpace) -> float:
    """DSB 2018's mean average precision over IoU thresholds 0.5-0.95 of ``N x H x W``
    instance label maps, per image then averaged (the registry hands predictions over as
    floats, so they are rounded back to labels)."""
    from podium.metrics.masks import mean_instance_average_precision

    return mean_instance_average_precision(list(np.rint(p).astype(np.int64)), list(y))


DICE = register_metric(Metric("dice", _mask_metric("dice"), True, (TASK,), as_float64=False))
# Not a competition metric yet: segmentation entries, post-processing and early stopping are
# fitted and ranked by Dice, so a competition scored by IoU would be ranked by another metric
# than its own (check_metric_for_task refuses it).
IOU = register_metric(Metric("iou", _mask_metric("iou"), True, (), as_float64=False))
INSTANCE_MAP = register_metric(Metric("instance_map", _instance_map, True, (TASK,),
                                      as_float64=False))
