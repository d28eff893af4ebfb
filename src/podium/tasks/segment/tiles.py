"""Full-image segmentation logits from a network trained on crops: overlapping tiles blended
with a window.

Networks trained on crops see a test image (768 x 768 ships, 1024 x 1024 radiographs) that is
larger than anything they trained on, and a fully convolutional network run on the whole image
can also exhaust device memory. Tiles of the training crop size keep both in check; tiles
overlap and are blended with a window that fades at tile borders, where zero padding inside
the network makes logits wrong, so no seams show where tiles meet. TTA views compose with
tiles (:func:`podium.train.tta.mean_over_views` turns each view back):
``mean_over_views(lambda x: predict_tiled(model, x, tile=256), images, views)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

from podium.errors import PodiumInputError, did_you_mean

Predict = Callable[[torch.Tensor], torch.Tensor]

WINDOWS = ("hann", "pyramid", "uniform")
WINDOW_FLOOR = 1e-3  # border pixels keep some weight, so no pixel is ever divided by ~0


def tile_starts(length: int, tile: int, min_coverage: int = 2) -> list[int]:
    """Evenly spread starts of ``tile``-long tiles over ``length``: the first at 0, the last
    ending at ``length``, no gap over ``tile // min_coverage``, and at least ``min_coverage``
    tiles where the length leaves room for that many. Any pixel at least
    ``(min_coverage - 1) * (tile // min_coverage)`` from both ends lies in ``min_coverage``
    tiles; nearer an end no tiling can promise that (pixel 0 lies only in the tile at 0), and
    coverage ramps up 1, 2, ... every ``tile // min_coverage`` pixels."""
    if tile < 1 or length < 1:
        raise PodiumInputError(f"Tiles need a tile size and a length >= 1, got {tile}, {length}.")
    if not 1 <= min_coverage <= tile:
        raise PodiumInputError(
            f"min_coverage {min_coverage} must be between 1 and the tile size {tile}: "
            "each tile then moves by at most tile // min_coverage pixels."
        )
    if length <= tile:
        return [0]
    span = length - tile
    gaps = max(math.ceil(span / (tile // min_coverage)), min(min_coverage - 1, span))
    return [(i * span + gaps // 2) // gaps for i in range(gaps + 1)]  # round half up


def blend_window(tile: int, kind: str = "hann") -> torch.Tensor:
    """``tile x tile`` weights in (0, 1] that fade towards tile borders ("hann": two Hann
    windows; "pyramid": two linear ramps) or don't ("uniform"). Each axis gets its own 1-D
    window and floor, multiplied: a floor or minimum over the 2-D window would weigh tiles
    equally all along the image's edge rows, where every tile's weight is tiny, and seams
    would show there. The floor keeps pixels counted where only a tile's border covers them."""
    if kind not in WINDOWS:
        hint = did_you_mean(kind, WINDOWS)
        raise PodiumInputError(
            f"Unknown blending window {kind!r}.{hint} Choose one of {', '.join(WINDOWS)}."
        )
    if kind == "uniform":
        return torch.ones(tile, tile)
    centres = (torch.arange(tile, dtype=torch.float64) + 0.5) / tile  # symmetric, never 0 or 1
    line = torch.sin(math.pi * centres) ** 2 if kind == "hann" else 1 - (2 * centres - 1).abs()
    line = (line / line.max()).clamp_min(WINDOW_FLOOR)
    return (line[:, None] * line[None, :]).float()


def _pad_axis(images: torch.Tensor, axis: int, size: int) -> torch.Tensor:
    """Pad the end of one spatial axis to ``size``: reflect where the image is long enough to
    mirror, zeros where it is not (reflection needs more pixels than it adds)."""
    extra = size - images.shape[axis]
    if extra <= 0:
        return images
    pad = (0, extra, 0, 0) if axis == 3 else (0, 0, 0, extra)
    mode = "reflect" if extra < images.shape[axis] else "constant"
    return F.pad(images, pad, mode=mode)


def edge_margin(tile: int, min_coverage: int = 2) -> int:
    """Pixels added around an image larger than a tile, so that its edge pixels too lie in
    ``min_coverage`` tiles (without it pixel 0 lies only in the first tile)."""
    return (min_coverage - 1) * (tile // min_coverage)


def coverage_map(height: int, width: int, tile: int, min_coverage: int = 2) -> torch.Tensor:
    """How many tiles cover each pixel of a ``height x width`` image, as predict_tiled lays
    them out (margins included)."""
    images = torch.zeros(1, 1, height, width)
    padded, (top, left) = _with_margins(_pad_axis(_pad_axis(images, 2, tile), 3, tile), tile,
                                        min_coverage)
    counts = torch.zeros(padded.shape[2:])
    for y in tile_starts(padded.shape[2], tile, min_coverage):
        for x in tile_starts(padded.shape[3], tile, min_coverage):
            counts[y:y + tile, x:x + tile] += 1
    return counts[top:top + height, left:left + width]


def _with_margins(images: torch.Tensor, tile: int, min_coverage: int
                  ) -> tuple[torch.Tensor, tuple[int, int]]:
    """Zero margins on each axis longer than a tile; returns the images and (top, left)."""
    margin = edge_margin(tile, min_coverage)
    top = margin if images.shape[2] > tile else 0
    left = margin if images.shape[3] > tile else 0
    if top or left:
        images = F.pad(images, (left, left, top, top))
    return images, (top, left)


def _tile_batches(
    images: torch.Tensor, tile: int, batch_size: int, min_coverage: int
) -> Iterator[tuple[list[tuple[int, int, int]], torch.Tensor]]:
    """(image, y, x) of up to ``batch_size`` tiles and their pixels, never more at once."""
    ys = tile_starts(images.shape[2], tile, min_coverage)
    xs = tile_starts(images.shape[3], tile, min_coverage)
    where = [(n, y, x) for n in range(images.shape[0]) for y in ys for x in xs]
    for i in range(0, len(where), batch_size):
        chunk = where[i:i + batch_size]
        yield chunk, torch.stack([images[n, :, y:y + tile, x:x + tile] for n, y, x in chunk])


def _checked(logits: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
    """The logits, if they line up pixel for pixel with the input, as blending needs."""
    if logits.ndim != 4 or logits.shape[0] != batch.shape[0] or logits.shape[2:] != batch.shape[2:]:
        raise PodiumInputError(
            f"The model returned logits of shape {tuple(logits.shape)} for input of shape "
            f"{tuple(batch.shape)}; tiles need N x K x H x W logits of the input's "
            "H and W (upsample the network's output to its input size)."
        )
    return logits


@torch.no_grad()
def predict_tiled(
    predict: Predict,
    images: torch.Tensor,
    tile: int,
    batch_size: int = 8,
    window: str = "hann",
    min_coverage: int = 2,
) -> torch.Tensor:
    """Logits ``N x K x H x W`` for whole ``N x C x H x W`` images from ``tile x tile`` tiles,
    run ``batch_size`` at a time and averaged with ``blend_window`` weights where they overlap.
    Images shorter than a tile are padded up to it (a network may need its training size, e.g.
    a multiple of 32), so one that fits in one tile is a single plain ``predict`` call. Larger
    images get zero margins of :func:`edge_margin` pixels, so every pixel, edges included,
    lies in at least ``min_coverage`` tiles (see :func:`coverage_map`).
    Runs without autograd: a graph kept across all tiles would hold every activation."""
    if images.ndim != 4:
        raise PodiumInputError(f"Expected images N x C x H x W, got shape {tuple(images.shape)}.")
    if batch_size < 1:
        raise PodiumInputError(f"batch_size must be >= 1, got {batch_size}.")
    weights = blend_window(tile, window)  # validates the window name before any work
    height, width = images.shape[2:]
    padded = _pad_axis(_pad_axis(images, 2, tile), 3, tile)
    if padded.shape[2:] == (tile, tile):
        return _checked(predict(padded), padded)[:, :, :height, :width]
    padded, (top, left) = _with_margins(padded, tile, min_coverage)
    total = weight_sum = None
    for where, batch in _tile_batches(padded, tile, batch_size, min_coverage):
        logits = _checked(predict(batch), batch)
        if total is None:
            # at least float32: half-precision sums over many tiles would lose the logits
            dtype = torch.promote_types(logits.dtype, torch.float32)
            total = torch.zeros((padded.shape[0], logits.shape[1], *padded.shape[2:]),
                                dtype=dtype, device=logits.device)
            weight_sum = torch.zeros(padded.shape[2:], dtype=dtype, device=logits.device)
            weights = weights.to(weight_sum)
        for (n, y, x), tile_logits in zip(where, logits, strict=True):
            total[n, :, y:y + tile, x:x + tile] += tile_logits * weights
            if n == 0:  # every image has the same tiles, so the same weights
                weight_sum[y:y + tile, x:x + tile] += weights
    return (total / weight_sum)[:, :, top:top + height, left:left + width]
