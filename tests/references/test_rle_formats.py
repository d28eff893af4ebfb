"""podium's RLE formats against independent encoders and decoders written here from each
competition's published description, not from podium:

- Kaggle's evaluation pages (Airbus, Severstal, DSB 2018, Understanding Clouds): "pairs of
  values that contain a start position and a run length", pixels "numbered from top to
  bottom, then left to right" and "1-indexed" (``kaggle`` with mask_order F; mask_order C
  numbers them left to right first).
- SIIM-ACR Pneumothorax's ``mask_functions.py``: ``rle2mask`` adds each start to a running
  position (so a start is the gap since the end of the previous run, counted from 0), fills
  ``length`` values of a flat ``width * height`` array, and the caller transposes the
  ``(width, height)`` reshape, so pixels are numbered column-major; ``mask2rle`` walks
  columns, then rows, and restarts its pixel counter after every run.

Plain Python loops over pixels, so nothing is shared with podium's vectorised code.
"""

from __future__ import annotations

import numpy as np
import pytest

from podium.tasks.segment.rle import RLE_FORMATS, rle_decode, rle_encode

# --- the references -----------------------------------------------------------------------


def _pixel_order(height: int, width: int, order: str) -> list[tuple[int, int]]:
    """(row, column) of pixel 0, 1, 2, ...: top to bottom then left to right (F), or left to
    right then top to bottom (C)."""
    if order == "F":
        return [(r, c) for c in range(width) for r in range(height)]
    return [(r, c) for r in range(height) for c in range(width)]


def kaggle_encode(mask: np.ndarray, order: str) -> str:
    """Kaggle's description: walk the pixels in order, numbered from 1; each maximal run of
    foreground pixels is written as its first pixel's number and its length."""
    values, run_start, run_length = [], None, 0
    for number, (r, c) in enumerate(_pixel_order(*mask.shape, order), start=1):
        if mask[r, c]:
            if run_start is None:
                run_start, run_length = number, 0
            run_length += 1
        elif run_start is not None:
            values += [run_start, run_length]
            run_start = None
    if run_start is not None:
        values += [run_start, run_length]
    return " ".join(str(v) for v in values)


def kaggle_decode(rle: str, shape: tuple[int, int], order: str) -> np.ndarray:
    """Kaggle's description read back: pixel numbers start..start+length-1, from 1."""
    mask = np.zeros(shape, dtype=np.uint8)
    pixels = _pixel_order(*shape, order)
    tokens = [int(t) for t in rle.split()]
    for start, length in zip(tokens[0::2], tokens[1::2], strict=True):
        for number in range(start, start + length):
            mask[pixels[number - 1]] = 1
    return mask


def siim_encode(mask: np.ndarray) -> str:
    """SIIM's mask2rle re-derived: a pixel counter restarted after every run, so each start is
    the number of background pixels since the previous run ended. (The published function
    walks ``img[x][y]`` with x over the width, so it is given the transposed mask, and it never
    writes a run that reaches the last pixel; this one does.)"""
    height, width = mask.shape
    columns_first = mask.T  # img[x][y]: x the column, y the row
    values, last, counter, run_start, run_length = [], 0, 0, -1, 0
    for x in range(width):
        for y in range(height):
            color = 255 if columns_first[x][y] else 0
            if color != last:
                if color == 255:
                    run_start, run_length = counter, 1
                else:
                    values += [run_start, run_length]
                    run_start, run_length, counter = -1, 0, 0
            elif run_start > -1:
                run_length += 1
            last = color
            counter += 1
    if run_start > -1:  # the run that ends on the last pixel
        values += [run_start, run_length]
    return " ".join(str(v) for v in values)


def siim_decode(rle: str, shape: tuple[int, int]) -> np.ndarray:
    """SIIM's rle2mask re-derived: a running position, each start added to it, then the run
    filled and the position moved past it; the flat array is reshaped (width, height) and
    transposed."""
    height, width = shape
    flat = [0] * (width * height)
    tokens = [int(t) for t in rle.split()]
    position = 0
    for start, length in zip(tokens[0::2], tokens[1::2], strict=True):
        position += start
        for i in range(position, position + length):
            flat[i] = 1
        position += length
    return np.array(flat, dtype=np.uint8).reshape(width, height).T


CODECS = {  # name -> (podium's format and order, reference encoder, reference decoder)
    "kaggle F": (("kaggle", "F"), lambda m: kaggle_encode(m, "F"),
                 lambda r, s: kaggle_decode(r, s, "F")),
    "kaggle C": (("kaggle", "C"), lambda m: kaggle_encode(m, "C"),
                 lambda r, s: kaggle_decode(r, s, "C")),
    "siim": (("siim", "F"), siim_encode, siim_decode),
}


def test_every_registered_format_has_a_reference():
    assert {fmt for (fmt, _), _, _ in CODECS.values()} == set(RLE_FORMATS)
    assert {(f.name, o) for f in RLE_FORMATS.values() for o in f.orders} == {
        key for key, _, _ in CODECS.values()}


# --- hand cases -----------------------------------------------------------------------------


def test_the_same_tiny_mask_in_each_format():
    """The README's example: a 3x3 mask with (0, 1), (1, 1) and (2, 2) set."""
    mask = np.zeros((3, 3), dtype=np.uint8)
    mask[0, 1] = mask[1, 1] = mask[2, 2] = 1
    expected = {"kaggle F": "4 2 9 1", "kaggle C": "2 1 5 1 9 1", "siim": "3 2 3 1"}
    for name, ((fmt, order), encode, decode) in CODECS.items():
        assert encode(mask) == expected[name], name
        assert rle_encode(mask, order, fmt) == expected[name], name
        np.testing.assert_array_equal(rle_decode(expected[name], (3, 3), order, fmt), mask)
        np.testing.assert_array_equal(decode(expected[name], (3, 3)), mask)


def test_kaggle_evaluation_page_example():
    """'1 3 10 5' implies pixels 1,2,3,10,11,12,13,14 are in the mask."""
    mask = rle_decode("1 3 10 5", (5, 4), "F", "kaggle")
    assert sorted(number for number, (r, c) in enumerate(_pixel_order(5, 4, "F"), start=1)
                  if mask[r, c]) == [1, 2, 3, 10, 11, 12, 13, 14]


SIIM_EXAMPLE = ("387620 23 996 33 986 43 977 51 968 58 962 65 956 70 952 74 949 76 946 79")
"""The encoded pneumothorax the SIIM-ACR data page shows (a 1024 x 1024 radiograph)."""


def test_siim_data_page_example():
    mask = rle_decode(SIIM_EXAMPLE, (1024, 1024), "F", "siim")
    np.testing.assert_array_equal(mask, siim_decode(SIIM_EXAMPLE, (1024, 1024)))
    # 387620 = 378 * 1024 + 548: the first run is rows 548-570 of column 378, the next
    # starts 996 pixels after it ends, at 388639 = 379 * 1024 + 543
    assert mask[548:571, 378].all() and mask[:548, 378].sum() == mask[571:, 378].sum() == 0
    assert mask[543:576, 379].all() and mask[:, 379].sum() == 33
    assert mask.sum() == sum(int(v) for v in SIIM_EXAMPLE.split()[1::2])
    assert rle_encode(mask, "F", "siim") == SIIM_EXAMPLE
    # read as Kaggle's absolute starts it is refused, not turned into another mask
    with pytest.raises(ValueError, match=r"pair 2 \('996 33', tokens 3-4\): run starts before"):
        rle_decode(SIIM_EXAMPLE, (1024, 1024), "F", "kaggle")


def test_a_kaggle_string_read_as_siim_runs_past_the_image():
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[20:30, 40:45] = 1  # five column runs in the right half
    kaggle = rle_encode(mask, "F", "kaggle")
    assert kaggle == kaggle_encode(mask, "F")
    # column 40 holds pixels 2561-2624, so pair 1 is '2581 10' (rows 20-29) and pair 2
    # '2645 10'; read as offsets, pair 2 ends at 2581 + 10 + 2645 + 10 = 5246
    with pytest.raises(ValueError, match=r"pair 2 \('2645 10', tokens 3-4\): run ends at "
                                         r"pixel 5246, past the last pixel 4096 of a 64x64"):
        rle_decode(kaggle, (64, 64), "F", "siim")


def test_strings_valid_in_both_formats_decode_to_different_masks():
    """A string both formats accept is never read the same: the first start alone differs
    by one pixel (Kaggle counts from 1, SIIM's offset from 0)."""
    for rle in ("1 2", "1 2 5 1", "3 2 10 4"):
        kaggle = rle_decode(rle, (4, 5), "F", "kaggle")
        siim = rle_decode(rle, (4, 5), "F", "siim")
        assert kaggle.sum() == siim.sum() and not np.array_equal(kaggle, siim), rle
        np.testing.assert_array_equal(kaggle, kaggle_decode(rle, (4, 5), "F"))
        np.testing.assert_array_equal(siim, siim_decode(rle, (4, 5)))
    with pytest.raises(ValueError, match="start is below 1"):
        rle_decode("0 3", (4, 5), "F", "kaggle")  # SIIM's pixel 0
    assert rle_decode("0 3", (4, 5), "F", "siim")[:3, 0].all()


@pytest.mark.parametrize(("rle", "message"), [
    ("-1 3", "offset is negative; the first start is the 0-based pixel index"),
    ("2 3 -1 2", r"pair 2 \('-1 2', tokens 3-4\): offset is negative; starts are offsets"),
    ("2 0", "run length must be positive"),
    ("2 3 4 -2", r"pair 2 .*run length must be positive"),
    ("10 5 2 4", r"pair 2 \('2 4', tokens 3-4\): run ends at pixel 21, past the last pixel "
                 "20 of a 5x4 mask"),
    ("1 99999999999999999", "run ends at pixel 100000000000000000, past the last pixel 20"),
    ("99999999999999999 1 99999999999999999 1", r"pair 1 .*past the last pixel 20"),
    ("1 2 3", "odd number of values"),
    ("1 2 x 3", r"token 3 \('x'\) is not an integer"),
])
def test_bad_siim_strings_name_the_pair(rle, message):
    with pytest.raises(ValueError, match=message):
        rle_decode(rle, (5, 4), "F", "siim")


def test_siim_adjacent_runs_and_edges():
    """An offset of 0 after a run continues it (what the published encoder never writes, but
    its decoder reads); runs may touch the first and the last pixel."""
    np.testing.assert_array_equal(rle_decode("0 2 0 3", (5, 1), "F", "siim"), np.ones((5, 1)))
    assert rle_decode("0 1 18 1", (5, 4), "F", "siim")[[0, 4], [0, 3]].all()
    assert rle_encode(np.ones((5, 4)), "F", "siim") == "0 20"


# --- seeded random masks ----------------------------------------------------------------------

SHAPES = [(1, 1), (1, 9), (9, 1), (2, 2), (3, 7), (7, 3), (5, 13), (13, 5), (16, 16),
          (11, 24), (24, 11)]


def _random_masks(n: int, seed: int = 2024):
    """Empty, full, single-pixel, edge-touching, blob and noise masks of many shapes."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        height, width = SHAPES[i % len(SHAPES)]
        kind = i % 8
        if kind == 0:
            mask = np.zeros((height, width), dtype=np.uint8)
        elif kind == 1:
            mask = np.ones((height, width), dtype=np.uint8)
        elif kind == 2:
            mask = np.zeros((height, width), dtype=np.uint8)
            mask[rng.integers(height), rng.integers(width)] = 1
        elif kind == 3:  # the first and last pixels of both orders, and the border
            mask = (rng.random((height, width)) < 0.3).astype(np.uint8)
            mask[0, 0] = mask[-1, -1] = mask[0, -1] = mask[-1, 0] = 1
            mask[:, -1] = rng.random(height) < 0.7
        elif kind == 4:  # a rectangle
            mask = np.zeros((height, width), dtype=np.uint8)
            r0, c0 = rng.integers(height), rng.integers(width)
            mask[r0:r0 + rng.integers(1, height + 1), c0:c0 + rng.integers(1, width + 1)] = 1
        else:
            mask = (rng.random((height, width)) < rng.choice([0.05, 0.5, 0.95])).astype(np.uint8)
        yield mask


def test_podium_agrees_with_the_references_on_1200_seeded_masks():
    checked = 0
    for mask in _random_masks(1200):
        for name, ((fmt, order), encode, decode) in CODECS.items():
            reference = encode(mask)
            ours = rle_encode(mask, order, fmt)
            assert ours == reference, (name, mask.shape)
            np.testing.assert_array_equal(rle_decode(reference, mask.shape, order, fmt), mask)
            np.testing.assert_array_equal(decode(ours, mask.shape), mask)
        checked += 1
    assert checked == 1200


def test_a_string_in_one_format_is_never_silently_the_same_mask_in_the_other():
    """Across formats a non-empty mask's string is refused or decodes to another mask; never
    to the mask it encodes (and on multi-column objects it is refused outright, below)."""
    for mask in _random_masks(400, seed=7):
        if not mask.any():
            continue
        for source, target in (("kaggle", "siim"), ("siim", "kaggle")):
            try:
                other = rle_decode(rle_encode(mask, "F", source), mask.shape, "F", target)
            except ValueError:
                continue
            assert not np.array_equal(other, mask)


def _ellipse(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    yy, xx = np.ogrid[:height, :width]
    cy, cx = rng.integers(height // 4, 3 * height // 4), rng.integers(width // 2, width - 6)
    ry, rx = rng.integers(3, height // 4), rng.integers(3, 6)
    return (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1).astype(np.uint8)


def test_objects_in_the_wrong_format_are_refused():
    """What SIIM and Kaggle masks look like (objects spanning several columns, here in the
    image's right half): SIIM strings read as Kaggle have starts that do not ascend, Kaggle
    strings read as SIIM run past the image; both are refused, naming a pair."""
    rng = np.random.default_rng(11)
    for _ in range(200):
        height, width = rng.choice([32, 64, 128]), rng.choice([32, 48, 96])
        mask = _ellipse(rng, int(height), int(width))
        siim, kaggle = rle_encode(mask, "F", "siim"), rle_encode(mask, "F", "kaggle")
        with pytest.raises(ValueError, match=r"RLE pair \d+ .*starts before the previous run"):
            rle_decode(siim, mask.shape, "F", "kaggle")
        with pytest.raises(ValueError, match=r"RLE pair \d+ .*past the last pixel"):
            rle_decode(kaggle, mask.shape, "F", "siim")
