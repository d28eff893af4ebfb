"""Near-duplicate images: perceptual-hash candidates confirmed by thumbnail correlation.

One reduced-size decode per image gives a 32x32 gray thumbnail. Its DCT gives a 63-bit
perceptual hash (pHash) that survives re-encoding, resizing and brightness changes; pairs
within a Hamming distance become candidates. A candidate is confirmed when its lightly
blurred, zero-mean, unit-norm 16x16 thumbnails correlate above a threshold, which removes the
hash's chance collisions (pHash alone loses precision at scale). The check also tries 2.5 %
and 5 % centre zooms of either side, so small crops still correlate. Hamming distances come
from float32 GEMMs on cache-sized tiles in worker threads (with bits as +-1 the dot product is
63 - 2 x the distance): brute force is exact, and BLAS makes it fast up to ~10^5 images.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from podium.schema import schema_field

log = logging.getLogger(__name__)

HASH_SIDE = 32
CORR_SIDE = 16
HASH_BITS = 8 * 8 - 1  # the 8x8 lowest DCT frequencies, DC left out
_REDUCED_FLAGS = {2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
                  8: cv2.IMREAD_REDUCED_GRAYSCALE_8}
_TILE_ROWS, _TILE_COLUMNS = 128, 2048  # a 1 MB float32 tile of dot products
_PAIR_CHUNK = 2048  # pairs scored at once: their gathered vectors stay in cache
_SIGNATURE_CHUNK = 256


@dataclass(frozen=True)
class NearDuplicateSettings:
    """The config's ``dedup`` thresholds (the schema's defaults)."""

    max_hash_distance: int = schema_field("dedup", "max_hash_distance")
    min_correlation: float = schema_field("dedup", "min_correlation")
    flip_invariant: bool = schema_field("dedup", "flip_invariant")


def _reduction(height: int, width: int) -> int:
    """The largest DCT-scaled decode factor that still leaves the hash side: at 1/8 a JPEG
    decodes to its blocks' DC terms, the same block means an area resize would give."""
    factor = 1
    for candidate in (2, 4, 8):
        if min(height, width) // candidate >= HASH_SIDE:
            factor = candidate
    return factor


def load_gray_thumbnail(path: str | Path, height: int, width: int, channels: int) -> np.ndarray:
    """A ``HASH_SIDE``-square float32 gray thumbnail from one (reduced-size) decode.

    Images with more than three channels (e.g. RGBY stacks) and formats OpenCV cannot read
    (DICOM) are decoded in full and averaged over all channels; the others use OpenCV's
    reduced gray decode, which JPEG does in the DCT domain.
    """
    image = None
    if channels <= 3:
        flag = _REDUCED_FLAGS.get(_reduction(height, width), cv2.IMREAD_GRAYSCALE)
        image = cv2.imread(str(path), flag)
    if image is None:  # more than 3 channels, or a format OpenCV cannot read (DICOM)
        from podium.preprocess.transforms import decode_image

        image = decode_image(path).astype(np.float32).mean(axis=2)
    image = image.astype(np.float32)
    return cv2.resize(image, (HASH_SIDE, HASH_SIDE), interpolation=cv2.INTER_AREA)


def _dct_rows(n: int, keep: int) -> np.ndarray:
    """The first ``keep`` rows of the orthonormal DCT-II matrix (as ``cv2.dct`` uses)."""
    k = np.arange(keep)[:, None]
    x = np.arange(n)[None, :]
    rows = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    rows[0] /= np.sqrt(2.0)
    return rows.astype(np.float32)


_DCT8 = _dct_rows(HASH_SIDE, 8)


def phash_bits(thumbnails: np.ndarray) -> np.ndarray:
    """63 pHash bits of each ``(n, 32, 32)`` thumbnail: the 8x8 low-frequency DCT
    coefficients (DC left out) above their median, computed for the whole batch at once."""
    coefficients = _DCT8 @ thumbnails.astype(np.float32) @ _DCT8.T  # two GEMMs, not einsum
    coefficients = coefficients.reshape(len(thumbnails), 64)[:, 1:]
    return coefficients > np.median(coefficients, axis=1, keepdims=True)


def phash(thumbnail: np.ndarray) -> np.uint64:
    """The 63-bit perceptual hash of one thumbnail, packed into an integer."""
    bits = np.concatenate([[False], phash_bits(thumbnail[None])[0]])
    return np.frombuffer(np.packbits(bits).tobytes(), dtype=">u8")[0].astype(np.uint64)


def d4_views(thumbnail: np.ndarray) -> list[np.ndarray]:
    """The eight flips and quarter turns of a square thumbnail (identity first)."""
    views = []
    for turns in range(4):
        rotated = np.rot90(thumbnail, turns)
        views += [rotated, rotated[:, ::-1]]
    return [np.ascontiguousarray(v) for v in views]


def batch_d4(thumbnails: np.ndarray, view: int) -> np.ndarray:
    """View ``view`` (as numbered by :func:`d4_views`) of a batch ``(n, side, side)``."""
    rotated = np.rot90(thumbnails, view // 2, axes=(1, 2))
    return rotated[:, :, ::-1] if view % 2 else rotated


ZOOMS = (0.0, 0.025, 0.05)
BLUR_SIGMA = 1.0


def correlation_steps(thumbnail: np.ndarray, crop: float) -> np.ndarray:
    """What the correlation check compares: the 32x32 thumbnail blurred, zoomed into its
    centre (``crop`` of the side removed) and area-resized to 16x16."""
    centre = (HASH_SIDE - 1) / 2
    scale = 1.0 - crop
    zoom = np.array([[scale, 0, centre * crop], [0, scale, centre * crop]], dtype=np.float32)
    blurred = cv2.GaussianBlur(thumbnail, (0, 0), BLUR_SIGMA, borderType=cv2.BORDER_REFLECT)
    zoomed = cv2.warpAffine(blurred, zoom, (HASH_SIDE, HASH_SIDE),
                            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                            borderMode=cv2.BORDER_REFLECT)
    return cv2.resize(zoomed, (CORR_SIDE, CORR_SIDE), interpolation=cv2.INTER_AREA)


@cache
def correlation_factor(crop: float) -> np.ndarray:
    """The ``(16, 32)`` matrix A with ``correlation_steps(T) == A @ T @ A.T``.

    Blur, axis-aligned zoom and area resize each act on rows and columns alike and keep
    constants constant, so the 2-D map factors; A's column y is what the steps make of an
    image whose row y is ones. Two small GEMMs per batch replace a 256x1024 one."""
    rows = np.zeros((HASH_SIDE, HASH_SIDE, HASH_SIDE), dtype=np.float32)
    rows[np.arange(HASH_SIDE), np.arange(HASH_SIDE), :] = 1.0
    return np.stack([correlation_steps(row, crop)[:, 0] for row in rows], axis=1)


def _normalized(vectors: np.ndarray) -> np.ndarray:
    centred = vectors - vectors.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(centred, axis=1, keepdims=True)
    return centred / np.maximum(norm, 1e-6)


def correlation_vectors(thumbnails: np.ndarray) -> np.ndarray:
    """``(n, len(ZOOMS), 256)`` unit vectors of every thumbnail at every zoom, computed once
    per image so that scoring a candidate pair is a dot product."""
    thumbnails = thumbnails.astype(np.float32)
    return np.stack([
        _normalized((correlation_factor(c) @ thumbnails @ correlation_factor(c).T)
                    .reshape(len(thumbnails), -1))
        for c in ZOOMS], axis=1)


D4_PERMUTATIONS = [batch_d4(np.arange(CORR_SIDE**2).reshape(1, CORR_SIDE, CORR_SIDE), v).ravel()
                    for v in range(8)]


def pair_correlation(vectors: np.ndarray, i: np.ndarray, j: np.ndarray, views: int
                     ) -> np.ndarray:
    """Best correlation of each pair over the views of i and small zooms of either side.

    ``vectors`` come from :func:`correlation_vectors`. Blur, centred zoom and area resize
    are all symmetric under flips and quarter turns, so the vectors of a flipped or turned
    thumbnail are the same permutation of its own vectors: no view is projected again."""
    best = np.full(len(i), -1.0, dtype=np.float32)
    if len(i) == 0:
        return best
    theirs, own = vectors[j], vectors[i]
    for view in range(views):
        mine = own if view == 0 else own[:, :, D4_PERMUTATIONS[view]]
        for zoom in range(1, len(ZOOMS)):
            best = np.maximum(best, np.einsum("kd,kd->k", mine[:, zoom], theirs[:, 0]))
            best = np.maximum(best, np.einsum("kd,kd->k", mine[:, 0], theirs[:, zoom]))
        best = np.maximum(best, np.einsum("kd,kd->k", mine[:, 0], theirs[:, 0]))
    return best


@dataclass
class Signatures:
    """Per image: pHash bits of every view (``(n, views, 63)`` bool), the 32x32 uint8
    thumbnail, and its correlation vectors (``(n, len(ZOOMS), 256)`` float32)."""

    bits: np.ndarray
    thumbnails: np.ndarray
    vectors: np.ndarray


def compute_signatures(
    rows: pd.DataFrame, flip_invariant: bool, threads: int = 1
) -> Signatures:
    """Thumbnails (one reduced decode per image), the pHash bits of every view of every
    thumbnail and their correlation vectors, in chunks spread over ``threads`` threads.

    Each worker decodes its chunk, hashes it and projects it itself (OpenCV and BLAS
    release the GIL; one OpenCV and one BLAS thread per worker), so nothing is serial."""
    records = list(rows[["path", "height", "width", "channels"]].itertuples(index=False,
                                                                           name=None))
    views = 8 if flip_invariant else 1
    thumbnails = np.zeros((len(records), HASH_SIDE, HASH_SIDE), dtype=np.uint8)
    bits = np.zeros((len(records), views, HASH_BITS), dtype=bool)
    vectors = np.zeros((len(records), len(ZOOMS), CORR_SIDE * CORR_SIDE), dtype=np.float32)

    def signature_chunk(start: int) -> None:
        stop = min(len(records), start + _SIGNATURE_CHUNK)
        chunk = np.stack([load_gray_thumbnail(*record) for record in records[start:stop]])
        for view in range(views):
            bits[start:stop, view] = phash_bits(batch_d4(chunk, view))
        thumbnails[start:stop] = np.clip(np.rint(chunk), 0, 255)
        vectors[start:stop] = correlation_vectors(thumbnails[start:stop])

    cv2.setNumThreads(1)
    starts = range(0, len(records), _SIGNATURE_CHUNK)
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(max(1, threads)) as pool:
        for _ in tqdm(pool.map(signature_chunk, starts), total=len(starts), desc="thumbnails",
                      mininterval=5):
            pass
    return Signatures(bits, thumbnails, vectors)


def _row_block_candidates(signs: np.ndarray, identity: np.ndarray, start: int, rows: int,
                          min_dot: float) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i, j), i in ``[start, start + rows)``, j > i, whose hashes are within the
    Hamming distance, one cache-sized tile of columns at a time.

    With bits as +-1 the dot product is ``63 - 2 * hamming``, so a float32 GEMM compares
    the block with a tile of later images. Any view of i is compared with the identity view
    of j: the D4 group makes this symmetric."""
    stop = min(len(signs), start + rows)
    block = signs[start:stop]  # (b, views, 63)
    flat = block.reshape(-1, block.shape[2])
    found_i, found_j = [], []
    for column in range(start - start % _TILE_COLUMNS, len(signs), _TILE_COLUMNS):
        dots = flat @ identity[column : column + _TILE_COLUMNS].T
        if block.shape[1] > 1:
            dots = dots.reshape(block.shape[0], block.shape[1], -1).max(axis=1)
        i, j = np.nonzero(dots >= min_dot)
        i, j = i + start, j + column
        keep = j > i
        found_i.append(i[keep])
        found_j.append(j[keep])
    return np.concatenate(found_i), np.concatenate(found_j)


def hash_candidates(bits: np.ndarray, max_distance: int, threads: int = 1
                    ) -> tuple[np.ndarray, np.ndarray]:
    """All pairs ``i < j`` with some view of i within ``max_distance`` bits of j.

    Brute force, exact, O(n^2) but at BLAS speed: row blocks go to ``threads`` worker
    threads (one BLAS thread each, as GEMM and numpy's comparisons release the GIL), and
    every tile of dot products stays in cache while it is thresholded."""
    n, views, n_bits = bits.shape
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    signs = np.where(bits, 1.0, -1.0).astype(np.float32)
    identity = np.ascontiguousarray(signs[:, 0])
    min_dot = n_bits - 2 * max_distance - 0.5
    rows = max(8, _TILE_ROWS // views)
    with threadpool_limits(limits=1, user_api="blas"), ThreadPoolExecutor(max(1, threads)) as pool:
        found = list(pool.map(
            lambda start: _row_block_candidates(signs, identity, start, rows, min_dot),
            range(0, n, rows)))
    return np.concatenate([f[0] for f in found]), np.concatenate([f[1] for f in found])


def find_near_duplicates(
    ids: Sequence[str], signatures: Signatures, settings: NearDuplicateSettings,
    threads: int = 1,
) -> pd.DataFrame:
    """Confirmed near-duplicate pairs: ``id_a, id_b, kind='near', score=correlation``."""
    views = signatures.bits.shape[1]
    i, j = hash_candidates(signatures.bits, settings.max_hash_distance, threads)
    score = np.concatenate([
        pair_correlation(signatures.vectors, i[k : k + _PAIR_CHUNK], j[k : k + _PAIR_CHUNK],
                         views)
        for k in range(0, len(i), _PAIR_CHUNK)
    ]) if len(i) else np.zeros(0, dtype=np.float32)
    confirmed = score >= settings.min_correlation
    log.info("near duplicates: %d hash candidates, %d confirmed by correlation >= %.2f",
             len(i), int(confirmed.sum()), settings.min_correlation)
    ids = np.asarray(ids)
    return pd.DataFrame({
        "id_a": ids[i[confirmed]], "id_b": ids[j[confirmed]], "kind": "near",
        "score": np.round(score[confirmed].astype(np.float64), 4),
    })
