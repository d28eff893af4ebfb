"""Run-length encodings of binary masks, in each competition's format, chosen by name.

A mask is a list of runs of foreground pixels along one pixel numbering. Competitions agree on
"start length" pairs but not on what a start is, nor on the numbering:

- ``kaggle`` (Airbus ships, Severstal, DSB 2018, Understanding Clouds): each start is the
  absolute pixel number, counted from 1, and starts ascend. The pixel order is
  ``competition.mask_order``: "F" numbers pixels top to bottom, then left to right
  (column-major), "C" left to right, then top to bottom (row-major).
- ``siim`` (SIIM-ACR Pneumothorax): each start is an offset, the number of background pixels
  since the end of the previous run (the first one since pixel 0), as the competition's
  published ``mask_functions.py`` reads and writes them; pixels are numbered column-major (its
  ``rle2mask`` fills a width x height array that is then transposed), so the order is "F".

The same tiny mask (a 3x3 image with pixels (0, 1), (1, 1), (2, 2) set) is "4 2 9 1" in
``kaggle`` F, "2 1 5 1 9 1" in ``kaggle`` C and "3 2 3 1" in ``siim``.

Each format is one :class:`RleFormat` in :data:`RLE_FORMATS` (the config schema's enum lists
the same names). Decoding checks every run (a token that is no integer, a start before the
image, a non-positive length, a run past the image, runs that overlap or go back), because a
string in another format or a malformed cell would otherwise become a silently wrong mask;
the ValueError names the token or pair and the caller adds the file and row. A string in the
wrong format is caught where it breaks these rules (a ``siim`` string read as ``kaggle``
almost always has starts that do not ascend; a ``kaggle`` string read as ``siim`` runs past
the image once its starts add up), never guessed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from podium.errors import PodiumInputError, did_you_mean

ORDERS = {"F": "column-major: top to bottom, then left to right",
          "C": "row-major: left to right, then top to bottom"}
_INTEGER = re.compile(r"[+-]?\d+")

INSTANCE_JOIN = ";"
"""Joins the encodings of one image's instances (one train.csv row each) into one cell."""


def _pair(starts: np.ndarray, lengths: np.ndarray, i: int) -> str:
    return f"pair {i + 1} ('{starts[i]} {lengths[i]}', tokens {2 * i + 1}-{2 * i + 2})"


def _past_the_image(n_pixels: int, shape: tuple[int, int]) -> str:
    return f"past the last pixel {n_pixels} of a {shape[0]}x{shape[1]} mask"


def _check_lengths(starts: np.ndarray, lengths: np.ndarray) -> None:
    bad = np.flatnonzero(lengths < 1)
    if bad.size:
        raise ValueError(f"RLE {_pair(starts, lengths, bad[0])}: run length must be positive.")


def _kaggle_starts(firsts: np.ndarray, lengths: np.ndarray, shape: tuple[int, int]
                   ) -> np.ndarray:
    """0-based run starts of absolute, 1-based, ascending starts; every run checked."""
    n_pixels = shape[0] * shape[1]
    bad = np.flatnonzero(firsts < 1)
    if bad.size:
        raise ValueError(f"RLE {_pair(firsts, lengths, bad[0])}: start is below 1; pixels are "
                         "numbered from 1.")
    _check_lengths(firsts, lengths)
    # clipped first, so that the sums below cannot overflow; a clipped run is past the end
    last = np.minimum(firsts, n_pixels + 1) + np.minimum(lengths, n_pixels + 1) - 1
    bad = np.flatnonzero(last > n_pixels)
    if bad.size:
        i = bad[0]
        end = int(firsts[i]) + int(lengths[i]) - 1  # Python ints: exact, whatever the tokens
        raise ValueError(f"RLE {_pair(firsts, lengths, i)}: run ends at pixel {end}, "
                         f"{_past_the_image(n_pixels, shape)}; check the mask shape.")
    bad = np.flatnonzero(firsts[1:] <= last[:-1])
    if bad.size:
        i = bad[0] + 1
        why = ("starts before the previous run; starts must ascend"
               if firsts[i] < firsts[i - 1] else "overlaps the previous run")
        raise ValueError(f"RLE {_pair(firsts, lengths, i)}: run {why}.")
    return firsts - 1


def _kaggle_firsts(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    return starts + 1


def _siim_starts(offsets: np.ndarray, lengths: np.ndarray, shape: tuple[int, int]
                 ) -> np.ndarray:
    """0-based run starts of offsets from the end of the previous run; every run checked."""
    n_pixels = shape[0] * shape[1]
    bad = np.flatnonzero(offsets < 0)
    if bad.size:
        i = bad[0]
        why = ("the first start is the 0-based pixel index" if i == 0 else
               "starts are offsets from the end of the previous run, so this run would go "
               "back into it")
        raise ValueError(f"RLE {_pair(offsets, lengths, i)}: offset is negative; {why}.")
    _check_lengths(offsets, lengths)
    # clipped first, so that the running sum cannot overflow; a clipped run is past the end
    ends = np.cumsum(np.minimum(offsets, n_pixels + 1) + np.minimum(lengths, n_pixels + 1))
    bad = np.flatnonzero(ends > n_pixels)
    if bad.size:
        i = bad[0]
        end = sum(int(v) for v in offsets[:i + 1]) + sum(int(v) for v in lengths[:i + 1])
        raise ValueError(
            f"RLE {_pair(offsets, lengths, i)}: run ends at pixel {end}, "
            f"{_past_the_image(n_pixels, shape)} "
            "(pixels counted from 1); siim starts are offsets from the end of the previous "
            "run (absolute starts, as rle_format kaggle writes them, add up past the image).")
    return ends - lengths


def _siim_firsts(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    ends = starts + lengths
    return starts - np.concatenate(([0], ends[:-1])).astype(starts.dtype)


@dataclass(frozen=True)
class RleFormat:
    """One way of writing runs as "start length" pairs.

    ``to_firsts(starts, lengths)`` turns 0-based absolute run starts (ascending, runs apart)
    into the first value of each pair; ``to_starts(firsts, lengths, shape)`` goes back and
    raises ValueError, naming the pair, for a run that is not a valid run of a mask of that
    shape. ``orders`` are the pixel orders (``competition.mask_order``) the format allows.
    """

    name: str
    description: str
    competitions: str
    orders: tuple[str, ...]
    to_firsts: Callable[[np.ndarray, np.ndarray], np.ndarray]
    to_starts: Callable[[np.ndarray, np.ndarray, tuple[int, int]], np.ndarray]


RLE_FORMATS: dict[str, RleFormat] = {f.name: f for f in (
    RleFormat("kaggle", "absolute starts counted from 1, ascending, then the run length",
              "Airbus Ship Detection, Severstal, DSB 2018, Understanding Clouds",
              ("F", "C"), _kaggle_firsts, _kaggle_starts),
    RleFormat("siim", "each start the offset from the end of the previous run (the first "
              "from pixel 0), then the run length; pixels column-major (F)",
              "SIIM-ACR Pneumothorax", ("F",), _siim_firsts, _siim_starts),
)}
"""Every RLE format podium reads and writes, by the name ``competition.rle_format`` gives."""
DEFAULT_FORMAT = "kaggle"


def check_order(order: str) -> None:
    """Fail unless ``order`` is a pixel order RLE knows (F or C), naming both."""
    if order not in ORDERS:
        known = "; ".join(f"{name!r} ({meaning})" for name, meaning in ORDERS.items())
        raise PodiumInputError(f"unknown RLE pixel order {order!r}; use {known}.")


def get_format(name: str, order: str = "F", key: str = "competition.rle_format") -> RleFormat:
    """The format called ``name``, checked against the pixel ``order``; an unknown name or an
    order the format does not allow fails naming the config ``key`` and the known names."""
    check_order(order)
    found = RLE_FORMATS.get(name) if isinstance(name, str) else None
    if found is None:
        known = "; ".join(f"{f.name} ({f.competitions})" for f in RLE_FORMATS.values())
        raise PodiumInputError(f"config key {key}: unknown RLE format {name!r}; known: "
                               f"{known}.{did_you_mean(str(name), RLE_FORMATS)}")
    if order not in found.orders:
        raise PodiumInputError(
            f"config key {key}: RLE format {name!r} numbers pixels in order "
            f"{' or '.join(found.orders)} only ({ORDERS[found.orders[0]]}), so "
            f"competition.mask_order {order!r} does not apply; set it to {found.orders[0]}.")
    return found


def _check_shape(shape: tuple[int, int]) -> tuple[int, int]:
    try:
        height, width = (int(side) for side in shape)
    except (TypeError, ValueError):
        raise ValueError(f"mask shape {shape!r} is not (height, width).") from None
    if height < 1 or width < 1:
        raise ValueError(f"mask shape {shape!r} must have positive height and width.")
    return height, width


def mask_runs(mask: np.ndarray, order: str = "F") -> tuple[np.ndarray, np.ndarray]:
    """The runs of a 2-D mask (nonzero = foreground) along pixel ``order``: 0-based starts,
    ascending, and lengths, as int64 arrays."""
    check_order(order)
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"RLE encodes one 2-D mask; got an array of shape {mask.shape}.")
    flat = mask.ravel(order=order) != 0
    padded = np.concatenate(([False], flat, [False])).view(np.int8)
    edges = np.flatnonzero(np.diff(padded)).astype(np.int64)  # alternating starts and ends
    return edges[0::2], edges[1::2] - edges[0::2]


def format_runs(starts: np.ndarray, lengths: np.ndarray, rle_format: str = DEFAULT_FORMAT,
                order: str = "F") -> str:
    """"start length ..." of runs given as 0-based ascending ``starts`` and ``lengths``, in
    ``rle_format``; no runs give ""."""
    fmt = get_format(rle_format, order)
    starts, lengths = np.asarray(starts, dtype=np.int64), np.asarray(lengths, dtype=np.int64)
    if starts.size == 0:
        return ""
    pairs = np.empty(2 * starts.size, dtype=np.int64)
    pairs[0::2] = fmt.to_firsts(starts, lengths)
    pairs[1::2] = lengths
    return " ".join(map(str, pairs.tolist()))


def rle_encode(mask: np.ndarray, order: str = "F", rle_format: str = DEFAULT_FORMAT) -> str:
    """Encode a 2-D mask (nonzero = foreground) as "start length ..." in ``rle_format``
    along pixel ``order``; an empty mask gives ""."""
    get_format(rle_format, order)
    return format_runs(*mask_runs(mask, order), rle_format, order)


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


def rle_decode(rle: str | float | None, shape: tuple[int, int], order: str = "F",
               rle_format: str = DEFAULT_FORMAT) -> np.ndarray:
    """Decode "start length ..." in ``rle_format`` into a (height, width) uint8 0/1 mask.

    "", "-1", None and NaN give an empty mask. Several encodings joined by ``;`` (an image's
    instances, :data:`INSTANCE_JOIN`) decode to their union. A string that is not a valid
    encoding of a mask of this shape raises ValueError naming the token or pair and why.
    """
    fmt = get_format(rle_format, order)
    shape = _check_shape(shape)
    n_pixels = shape[0] * shape[1]
    if is_empty(rle):
        return np.zeros(shape, dtype=np.uint8)
    if not isinstance(rle, str):
        raise ValueError(f"RLE must be a string of 'start length' pairs; got {rle!r}.")
    if INSTANCE_JOIN in rle:
        union = np.zeros(shape, dtype=np.uint8)
        for part in rle.split(INSTANCE_JOIN):
            union |= rle_decode(part, shape, order, rle_format)
        return union
    values = _parse(rle)
    lengths = values[1::2]
    starts = fmt.to_starts(values[0::2], lengths, shape)
    steps = np.zeros(n_pixels + 1, dtype=np.int8)
    steps[starts] += 1  # runs neither overlap nor repeat, so no index repeats
    steps[starts + lengths] -= 1
    flat = np.cumsum(steps[:-1], dtype=np.int8).astype(np.uint8)
    return flat.reshape(shape, order=order)


def decodes_as(rle: object, shape: tuple[int, int], exclude: tuple[str, str]
               ) -> list[tuple[str, str]]:
    """The (format, order) pairs other than ``exclude`` under which ``rle`` decodes: the hint
    an error names when a string fails in the configured format."""
    found = []
    for fmt in RLE_FORMATS.values():
        for order in fmt.orders:
            if (fmt.name, order) == tuple(exclude):
                continue
            try:
                rle_decode(rle, shape, order, fmt.name)
            except ValueError:
                continue
            found.append((fmt.name, order))
    return found
