"""Kaggle run-length encoding of binary masks: "start length" pairs, pixels numbered from 1.

Competitions disagree on the pixel numbering, so both are here: order "F" numbers pixels top
to bottom, then left to right (column-major: Airbus ships, SIIM, DSB 2018), order "C" left
to right, then top to bottom (row-major). Decoding checks every run, because a malformed
string in a CSV would otherwise become a silently wrong mask; the ValueError names the bad
token and the caller adds the file and row.
"""

from __future__ import annotations

import math
import re

import numpy as np

from podium.errors import PodiumInputError

ORDERS = {"F": "column-major: top to bottom, then left to right",
          "C": "row-major: left to right, then top to bottom"}
_INTEGER = re.compile(r"[+-]?\d+")


def check_order(order: str) -> None:
    """Fail unless ``order`` is a pixel order RLE knows (F or C), naming both."""
    if order not in ORDERS:
        known = "; ".join(f"{name!r} ({meaning})" for name, meaning in ORDERS.items())
        raise PodiumInputError(f"unknown RLE pixel order {order!r}; use {known}.")


def _check_shape(shape: tuple[int, int]) -> tuple[int, int]:
    try:
        height, width = (int(side) for side in shape)
    except (TypeError, ValueError):
        raise ValueError(f"mask shape {shape!r} is not (height, width).") from None
    if height < 1 or width < 1:
        raise ValueError(f"mask shape {shape!r} must have positive height and width.")
    return height, width


def rle_encode(mask: np.ndarray, order: str = "F") -> str:
    """Encode a 2-D mask (nonzero = foreground) as "start length ..." with ascending starts;
    an empty mask gives ""."""
    check_order(order)
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"RLE encodes one 2-D mask; got an array of shape {mask.shape}.")
    flat = mask.ravel(order=order) != 0
    padded = np.concatenate(([False], flat, [False])).view(np.int8)
    edges = np.flatnonzero(np.diff(padded))  # alternating run starts and ends (0-based)
    if edges.size == 0:
        return ""
    starts, ends = edges[0::2], edges[1::2]
    pairs = np.empty(edges.size, dtype=np.int64)
    pairs[0::2] = starts + 1
    pairs[1::2] = ends - starts
    return " ".join(map(str, pairs.tolist()))


INSTANCE_JOIN = ";"
"""Joins the encodings of one image's instances (one train.csv row each) into one cell."""


def is_empty(rle: object) -> bool:
    """The spellings of "no mask" in Kaggle CSVs: "", "-1" (SIIM writes " -1"), None, NaN."""
    if rle is None:
        return True
    if isinstance(rle, str):
        return rle.strip() in ("", "-1")
    if isinstance(rle, (int, float, np.integer, np.floating)) and not isinstance(rle, bool):
        return math.isnan(rle) or rle == -1  # pandas reads an all "-1" column as numbers
    return False


def _parse(rle: str) -> np.ndarray:
    tokens = rle.split()
    for position, token in enumerate(tokens, start=1):
        if not _INTEGER.fullmatch(token):
            raise ValueError(f"RLE token {position} ({token!r}) is not an integer.")
    if len(tokens) % 2:
        raise ValueError(
            f"RLE has an odd number of values ({len(tokens)}); it must be 'start length' pairs."
        )
    try:
        return np.array(tokens).astype(np.int64)
    except OverflowError:
        big = next(i for i, t in enumerate(tokens, start=1) if abs(int(t)) >= 2**63)
        raise ValueError(f"RLE token {big} ({tokens[big - 1]!r}) is too large.") from None


def _check_runs(starts: np.ndarray, lengths: np.ndarray, n_pixels: int,
                shape: tuple[int, int]) -> None:
    def pair(i: int) -> str:
        return f"pair {i + 1} ('{starts[i]} {lengths[i]}', tokens {2 * i + 1}-{2 * i + 2})"

    bad = np.flatnonzero(starts < 1)
    if bad.size:
        raise ValueError(f"RLE {pair(bad[0])}: start is below 1; pixels are numbered from 1.")
    bad = np.flatnonzero(lengths < 1)
    if bad.size:
        raise ValueError(f"RLE {pair(bad[0])}: run length must be positive.")
    last = starts + lengths - 1
    bad = np.flatnonzero(last > n_pixels)
    if bad.size:
        raise ValueError(
            f"RLE {pair(bad[0])}: run ends at pixel {last[bad[0]]}, past the last pixel "
            f"{n_pixels} of a {shape[0]}x{shape[1]} mask; check the mask shape."
        )
    bad = np.flatnonzero(starts[1:] <= last[:-1])
    if bad.size:
        i = bad[0] + 1
        why = ("starts before the previous run; starts must ascend"
               if starts[i] < starts[i - 1] else "overlaps the previous run")
        raise ValueError(f"RLE {pair(i)}: run {why}.")


def rle_decode(rle: str | float | None, shape: tuple[int, int], order: str = "F") -> np.ndarray:
    """Decode "start length ..." into a (height, width) uint8 0/1 mask.

    "", "-1", None and NaN give an empty mask. Several encodings joined by ``;`` (an image's
    instances, :data:`INSTANCE_JOIN`) decode to their union. A malformed string raises
    ValueError naming the token or pair at fault and why.
    """
    check_order(order)
    shape = _check_shape(shape)
    n_pixels = shape[0] * shape[1]
    if is_empty(rle):
        return np.zeros(shape, dtype=np.uint8)
    if not isinstance(rle, str):
        raise ValueError(f"RLE must be a string of 'start length' pairs; got {rle!r}.")
    if INSTANCE_JOIN in rle:
        union = np.zeros(shape, dtype=np.uint8)
        for part in rle.split(INSTANCE_JOIN):
            union |= rle_decode(part, shape, order)
        return union
    values = _parse(rle)
    starts, lengths = values[0::2], values[1::2]
    _check_runs(starts, lengths, n_pixels, shape)
    steps = np.zeros(n_pixels + 1, dtype=np.int8)
    steps[starts - 1] += 1  # starts are distinct, and so are ends, so no index repeats
    steps[starts - 1 + lengths] -= 1
    flat = np.cumsum(steps[:-1], dtype=np.int8).astype(np.uint8)
    return flat.reshape(shape, order=order)
