"""Where a segmentation entry's masks go wrong, drawn: validation images with the true mask's
outline and the predicted one, the worst images by Dice first, then the best."""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from podium.segment.metrics import dice  # noqa: E402

TRUTH, PREDICTED = (0.2, 0.9, 0.2), (0.95, 0.2, 0.2)


def _outline(ax: plt.Axes, mask: np.ndarray, colour: tuple[float, ...]) -> None:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_NONE)
    for contour in contours:
        points = contour[:, 0, :]
        ax.plot(np.append(points[:, 0], points[0, 0]), np.append(points[:, 1], points[0, 1]),
                color=colour, linewidth=1.2)


def plot_mask_examples(images: np.ndarray, truth: np.ndarray, maps: np.ndarray,
                       ids: np.ndarray, name: str, path: str | Path, n: int = 6) -> None:
    """``n`` worst images by Dice (at 0.5 for probability maps) and the ``n`` best that hold
    an object, each with the true outline (green) and the predicted one (red)."""
    masks = maps if maps.dtype == np.uint8 else (maps >= 0.5).astype(np.uint8)
    scores = np.array([dice(m, t) for m, t in zip(masks, truth, strict=True)])
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
        _outline(ax, truth[i], TRUTH)
        _outline(ax, masks[i], PREDICTED)
        ax.set_title(f"{ids[i]}  dice {scores[i]:.2f}", fontsize=7)
    fig.suptitle(f"{name}: worst (top) and best OOF masks; green truth, red prediction",
                 fontsize=9, y=0.995)
    fig.tight_layout(h_pad=1.5)
    fig.savefig(path, dpi=110)
    plt.close(fig)
