"""Near-duplicate images: perceptual-hash candidates confirmed by thumbnail correlation.

One reduced-size decode per image gives a 32x32 gray thumbnail. Its DCT gives a 63-bit
perceptual hash (pHash) that survives re-encoding, resizing and brightness changes; pairs
within a Hamming distance become candidates. A candidate is confirmed when its lightly
blurred, zero-mean, unit-norm 16x16 thumbnails correlate above a threshold, which removes the
hash's chance collisions (pHash alone loses precision at scale). The check also tries 2.5 %
and 5 % centre zooms of either side, so small crops still correlate. Hamming distances come
from one float32 GEMM per block of rows (with bits as +-1 the dot product is 63 - 2 x the
distance): brute force is exact, and BLAS makes it fast up to ~10^5 images.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits
from tqdm import tqdm

log = logging.getLogger(__name__)

HASH_SIDE = 32
CORR_SIDE = 16
_REDUCED_FLAGS = {2: cv2.IMREAD_REDUCED_GRAYSCALE_2, 4: cv2.IMREAD_REDUCED_GRAYSCALE_4,
                  8: cv2.IMREAD_REDUCED_GRAYSCALE_8}
_BLOCK_ELEMENTS = 1 << 23
_PAIR_CHUNK = 1 << 16


@dataclass(frozen=True)
class NearDuplicateSettings:
    """The config's ``dedup`` thresholds."""

    max_hash_distance: int = 16
    min_correlation: float = 0.9
    flip_invariant: bool = False


def _reduction(height: int, width: int) -> int:
    """The largest DCT-scaled decode factor that still leaves 2x the hash side."""
    factor = 1
    for candidate in (2, 4, 8):
        if min(height, width) // candidate >= 2 * HASH_SIDE:
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


def _batch_d4(thumbnails: np.ndarray, view: int) -> np.ndarray:
    """View ``view`` (as numbered by :func:`d4_views`) of a batch ``(n, side, side)``."""
    rotated = np.rot90(thumbnails, view // 2, axes=(1, 2))
    return rotated[:, :, ::-1] if view % 2 else rotated


ZOOMS = (0.0, 0.025, 0.05)
BLUR_SIGMA = 1.0


def _correlation_operator(crop: float) -> np.ndarray:
    """The linear map from a 32x32 thumbnail to its blurred, centre-zoomed (``crop`` of the
    side removed) 16x16 version, built by applying the same steps to every basis image."""
    centre = (HASH_SIDE - 1) / 2
    scale = 1.0 - crop
    zoom = np.array([[scale, 0, centre * crop], [0, scale, centre * crop]], dtype=np.float32)
    rows = []
    for image in np.eye(HASH_SIDE * HASH_SIDE, dtype=np.float32).reshape(-1, HASH_SIDE,
                                                                         HASH_SIDE):
        blurred = cv2.GaussianBlur(image, (0, 0), BLUR_SIGMA, borderType=cv2.BORDER_REFLECT)
        zoomed = cv2.warpAffine(blurred, zoom, (HASH_SIDE, HASH_SIDE),
                                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_REFLECT)
        rows.append(cv2.resize(zoomed, (CORR_SIDE, CORR_SIDE),
                               interpolation=cv2.INTER_AREA).ravel())
    return np.array(rows, dtype=np.float32).T  # (CORR_SIDE**2, HASH_SIDE**2)


_OPERATORS: dict[float, np.ndarray] = {}


def _operator(crop: float) -> np.ndarray:
    if crop not in _OPERATORS:
        _OPERATORS[crop] = _correlation_operator(crop)
    return _OPERATORS[crop]


def _normalized(vectors: np.ndarray) -> np.ndarray:
    centred = vectors - vectors.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(centred, axis=1, keepdims=True)
    return centred / np.maximum(norm, 1e-6)


def correlation_vectors(thumbnails: np.ndarray) -> np.ndarray:
    """``(n, len(ZOOMS), 256)`` unit vectors of every thumbnail at every zoom, computed once
    per image so that scoring a candidate pair is a dot product."""
    flat = thumbnails.reshape(len(thumbnails), -1).astype(np.float32)
    return np.stack([_normalized(flat @ _operator(crop).T) for crop in ZOOMS], axis=1)


def pair_correlation(thumbnails: np.ndarray, i: np.ndarray, j: np.ndarray, views: int,
                     vectors: np.ndarray | None = None) -> np.ndarray:
    """Best correlation of each pair over the views of i and small zooms of either side.

    ``vectors`` (from :func:`correlation_vectors`) saves recomputing the identity views."""
    best = np.full(len(i), -1.0, dtype=np.float32)
    if len(i) == 0:
        return best
    theirs = vectors[j] if vectors is not None else correlation_vectors(thumbnails[j])
    for view in range(views):
        if view == 0 and vectors is not None:
            mine = vectors[i]
        else:
            mine = correlation_vectors(_batch_d4(thumbnails[i], view))
        for zoom in range(1, len(ZOOMS)):
            best = np.maximum(best, np.einsum("kd,kd->k", mine[:, zoom], theirs[:, 0]))
            best = np.maximum(best, np.einsum("kd,kd->k", mine[:, 0], theirs[:, zoom]))
        best = np.maximum(best, np.einsum("kd,kd->k", mine[:, 0], theirs[:, 0]))
    return best


def _thumbnails(records: list[tuple[str, int, int, int]]) -> list[np.ndarray]:
    return [load_gray_thumbnail(*record) for record in records]


@dataclass
class Signatures:
    """pHash bits of every view (``(n, views, 63)`` bool) and 32x32 uint8 thumbnails."""

    bits: np.ndarray
    thumbnails: np.ndarray


def compute_signatures(
    rows: pd.DataFrame, flip_invariant: bool, threads: int = 1
) -> Signatures:
    """Thumbnails (one reduced decode per image, in threads, in chunks to keep scheduling
    overhead low) and the pHash bits of every view of every thumbnail, in one batch."""
    records = list(rows[["path", "height", "width", "channels"]].itertuples(index=False,
                                                                           name=None))
    cv2.setNumThreads(1)
    with ThreadPoolExecutor(max(1, threads)) as pool:  # OpenCV decodes without the GIL
        thumbnails = [t for chunk in tqdm(
            pool.map(_thumbnails, [records[k : k + 256] for k in range(0, len(records), 256)]),
            total=-(-len(records) // 256), desc="thumbnails", mininterval=5) for t in chunk]
    thumbnails = (np.stack(thumbnails) if thumbnails
                  else np.zeros((0, HASH_SIDE, HASH_SIDE), dtype=np.float32))
    views = range(8) if flip_invariant else range(1)
    bits = np.stack([phash_bits(_batch_d4(thumbnails, v)) for v in views], axis=1)
    return Signatures(bits, np.clip(thumbnails.round(), 0, 255).astype(np.uint8))


def _row_blocks(n: int, views: int) -> Iterator[tuple[int, int]]:
    step = max(1, _BLOCK_ELEMENTS // max(1, n * views))
    for start in range(0, n, step):
        yield start, min(n, start + step)


def _candidates_in_block(signs: np.ndarray, start: int, stop: int, min_dot: float
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (i, j), i in [start, stop), j > i, whose hashes are within the Hamming distance.

    With bits as +-1, the dot product is ``63 - 2 * hamming``, so one float32 GEMM per block
    compares it with every later image. Any view of i is compared with the identity view of
    j: the D4 group makes this symmetric."""
    block = signs[start:stop]  # (b, views, 63)
    dots = np.matmul(block.reshape(-1, block.shape[2]), signs[start:, 0].T)
    dots = dots.reshape(block.shape[0], block.shape[1], -1).max(axis=1)
    i, j = np.nonzero(dots >= min_dot)
    i, j = i + start, j + start
    keep = j > i
    return i[keep], j[keep]


def find_near_duplicates(
    ids: Sequence[str], signatures: Signatures, settings: NearDuplicateSettings,
    threads: int = 1,
) -> pd.DataFrame:
    """Confirmed near-duplicate pairs: ``id_a, id_b, kind='near', score=correlation``."""
    n, views, n_bits = signatures.bits.shape
    signs = np.where(signatures.bits, 1.0, -1.0).astype(np.float32)
    min_dot = n_bits - 2 * settings.max_hash_distance - 0.5
    with threadpool_limits(limits=max(1, threads), user_api="blas"):
        found = [_candidates_in_block(signs, start, stop, min_dot)
                 for start, stop in _row_blocks(n, views)]
    i = np.concatenate([f[0] for f in found]) if found else np.zeros(0, dtype=np.int64)
    j = np.concatenate([f[1] for f in found]) if found else np.zeros(0, dtype=np.int64)
    vectors = correlation_vectors(signatures.thumbnails)
    score = np.concatenate([
        pair_correlation(signatures.thumbnails, i[k : k + _PAIR_CHUNK], j[k : k + _PAIR_CHUNK],
                         views, vectors)
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
