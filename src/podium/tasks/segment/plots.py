"""Where a segmentation entry's masks go wrong, drawn: validation images with the true masks'
outlines and the predicted ones, the worst images by Dice first, then the best."""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from podium.glue import StageJob  # noqa: E402
from podium.metrics.masks import dice  # noqa: E402
from podium.submit.leaderboard import best_entry  # noqa: E402
from podium.submit.plots import (  # noqa: E402
    plot_fold_scores,
    plot_leaderboard,
    plot_learning_curves,
    read_histories,
)
from podium.tables import load_packed, read_json  # noqa: E402
from podium.task import TaskSpec  # noqa: E402
from podium.tasks.segment.entries import SegmentTruth  # noqa: E402

TRUTH, PREDICTED = (0.2, 0.9, 0.2), (0.95, 0.2, 0.2)
_COLOUR_NAMES = ("blue", "orange", "green", "red", "purple", "brown", "pink", "grey")  # tab10


def _outline(ax: plt.Axes, mask: np.ndarray, colour: tuple[float, ...],
             style: str = "-") -> None:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_NONE)
    for contour in contours:
        points = contour[:, 0, :]
        ax.plot(np.append(points[:, 0], points[0, 0]), np.append(points[:, 1], points[0, 1]),
                color=colour, linewidth=1.2, linestyle=style)


def _image_scores(masks: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Each image's Dice averaged over its classes."""
    return np.array([np.mean([dice(m, t) for m, t in zip(mk, tk, strict=True)])
                     for mk, tk in zip(masks, truth, strict=True)])


def plot_mask_examples(images: np.ndarray, truth: np.ndarray, maps: np.ndarray,
                       ids: np.ndarray, name: str, path: str | Path, n: int = 6,
                       class_names: list[str] | None = None) -> None:
    """``n`` worst images by Dice (at 0.5 for probability maps; averaged over the classes)
    and the ``n`` best that hold an object. ``truth`` and ``maps`` are ``N x K x S x S``: one
    class is drawn with the true outline green and the predicted one red; several classes each
    in their own colour, truth solid and prediction dashed."""
    masks = maps if maps.dtype == np.uint8 else (maps >= 0.5).astype(np.uint8)
    scores = _image_scores(masks, truth)
    n_classes = truth.shape[1]
    palette = plt.get_cmap("tab10")
    order = np.argsort(scores, kind="stable")
    worst = list(order[:n])
    # the best among images with an object: two empty masks agreeing show nothing
    present = [i for i in order[::-1] if truth[i].any() and i not in worst]
    chosen = worst + present[:n]
    cols = min(len(chosen), n)
    rows = -(-len(chosen) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.2 * cols, 2.6 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, i in zip(axes.ravel(), chosen, strict=False):
        image = images[i]
        ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0,
                  vmax=65535 if image.dtype == np.uint16 else 255)
        for k in range(n_classes):
            if n_classes == 1:
                _outline(ax, truth[i, k], TRUTH)
                _outline(ax, masks[i, k], PREDICTED)
            else:
                _outline(ax, truth[i, k], palette(k))
                _outline(ax, masks[i, k], palette(k), "--")
        ax.set_title(f"{ids[i]}  dice {scores[i]:.2f}", fontsize=7)
    if n_classes == 1:
        legend = "green truth, red prediction"
    else:
        names = class_names or [str(k) for k in range(n_classes)]
        legend = "truth solid, prediction dashed; " + ", ".join(
            f"{c}: {colour}" for c, colour in zip(names, _COLOUR_NAMES, strict=False))
    fig.suptitle(f"{name}: worst (top) and best OOF masks; {legend}", fontsize=9, y=0.995)
    fig.tight_layout(h_pad=1.5)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_job(job: StageJob) -> None:
    """The ``plot_results`` job of a segmentation competition: the leaderboard, Dice per fold,
    learning curves and the best entry's worst and best OOF masks."""
    i, o = job.inputs, job.outputs
    board = pd.read_csv(i["leaderboard"])
    plot_leaderboard(board, o["leaderboard"])
    plot_fold_scores([read_json(p) for p in i["cvs"]], o["folds"])
    plot_learning_curves(read_histories(i["histories"]), "dice", o["curves"])
    truth = SegmentTruth.load(i["folds"], i["train_index"], i["masks"], i.get("instances"))
    best, oof_file = best_entry(board, job.options["names"], i["oofs"])
    maps = np.load(oof_file)
    images = load_packed(i["train_array"])[truth.rows]
    plot_mask_examples(images, truth.class_masks(maps.shape[1]), maps, truth.ids, best,
                       o["masks"], class_names=list(TaskSpec.load(i["task"]).classes))
