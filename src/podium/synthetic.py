"""Planted-duplicate image sets, generated on the fly for dedup tests and benchmarks.

Distinct base images are procedural (smooth random fields, gratings, shapes and noise, each
from its own seed); duplicates are copies altered the ways competition data repeats itself:
JPEG re-encoding, 0.5x and 2x resizing, brightness and contrast, a 2-5 % crop, and
(optionally) a horizontal flip. Nothing is downloaded.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

ALTERATIONS = ("jpeg", "half", "double", "brightness", "crop")


@dataclass(frozen=True)
class PlantedSet:
    """Files written, the truth pairs (ids of an original and its altered copy)."""

    files: pd.DataFrame  # id, path, height, width, channels, source, split: manifest-like
    pairs: set[frozenset[str]]


def _pink_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random field with a 1/f amplitude spectrum, the spectrum of natural photographs."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    radius = np.hypot(fx, fy)
    radius[0, 0] = 1.0
    spectrum = (rng.normal(size=radius.shape) + 1j * rng.normal(size=radius.shape)) / radius
    spectrum[0, 0] = 0.0
    field = np.fft.irfft2(spectrum, s=(size, size))
    return (field - field.mean()) / (field.std() + 1e-9)


def base_image(rng: np.random.Generator, size: int) -> np.ndarray:
    """One distinct colour image: natural-statistics (1/f) colour texture plus a few shapes
    and sensor noise, so thumbnails of unrelated images correlate as photos do."""
    mixing = rng.uniform(0.2, 1.0, (3, 3))
    fields = np.stack([_pink_noise(rng, size) for _ in range(3)], axis=-1) @ mixing
    image = (128 + 40 * fields / (fields.std() + 1e-9)).astype(np.float32)
    for _ in range(rng.integers(2, 6)):
        color = rng.uniform(0, 255, 3).tolist()
        center = tuple(int(v) for v in rng.integers(0, size, 2))
        if rng.random() < 0.5:
            cv2.circle(image, center, int(rng.integers(size // 16, size // 4)), color, -1)
        else:
            corner = tuple(int(v) for v in rng.integers(0, size, 2))
            cv2.rectangle(image, center, corner, color, -1)
    image += rng.normal(0, 4, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def alter(image: np.ndarray, how: str, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """An altered copy and the JPEG quality to save it with."""
    size = image.shape[0]
    if how == "half":
        return cv2.resize(image, (size // 2, size // 2), interpolation=cv2.INTER_AREA), 95
    if how == "double":
        return cv2.resize(image, (size * 2, size * 2), interpolation=cv2.INTER_CUBIC), 95
    if how == "brightness":
        alpha, beta = rng.uniform(0.75, 1.25), rng.uniform(-30, 30)
        return cv2.convertScaleAbs(image, alpha=alpha, beta=beta), 95
    if how == "crop":
        margin = int(size * rng.uniform(0.02, 0.05))
        top, left = rng.integers(0, margin + 1, 2)
        cropped = image[top : size - (margin - top), left : size - (margin - left)]
        return cv2.resize(cropped, (size, size), interpolation=cv2.INTER_AREA), 95
    if how == "flip":
        return image[:, ::-1].copy(), 95
    if how == "jpeg":
        return image, int(rng.integers(50, 80))
    raise ValueError(f"unknown alteration {how!r}")


def write_planted_set(
    out_dir: str | Path, n_base: int, n_duplicates: int, size: int = 256, seed: int = 0,
    flips: bool = False, threads: int = 1,
) -> PlantedSet:
    """``n_base`` distinct JPEGs plus ``n_duplicates`` altered copies of random bases."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    alterations = ALTERATIONS + (("flip",) if flips else ())
    sources = rng.integers(0, n_base, n_duplicates)
    alter_seeds = rng.integers(0, 2**31, n_duplicates)

    def write_base(i: int) -> dict:
        image = base_image(np.random.default_rng([seed, i]), size)
        return {**_save(out, f"img{i:06d}", image, 92), "source": f"img{i:06d}"}

    def write_duplicate(k: int) -> dict:
        source = int(sources[k])
        base = base_image(np.random.default_rng([seed, source]), size)  # regenerated, not kept
        image, quality = alter(base, alterations[k % len(alterations)],
                               np.random.default_rng(alter_seeds[k]))
        return {**_save(out, f"dup{k:06d}", image, quality), "source": f"img{source:06d}"}

    with ThreadPoolExecutor(max(1, threads)) as pool:
        rows = list(pool.map(write_base, range(n_base)))
        rows += list(pool.map(write_duplicate, range(n_duplicates)))
    pairs = {frozenset((row["source"], row["id"])) for row in rows[n_base:]}
    files = pd.DataFrame(rows)
    files["split"] = "train"
    return PlantedSet(files, pairs)


def _save(out: Path, image_id: str, image: np.ndarray, quality: int) -> dict:
    path = out / f"{image_id}.jpg"
    cv2.imwrite(str(path), image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    return {"id": image_id, "path": str(path), "height": image.shape[0],
            "width": image.shape[1], "channels": 3}


def score_pairs(found: pd.DataFrame, planted: PlantedSet) -> dict[str, float]:
    """Precision: found pairs whose two images come from the same base. Recall: planted pairs
    whose images end up in one cluster of the found pairs (transitive links count)."""
    source = planted.files.set_index("id")["source"]
    correct = (source.loc[found["id_a"]].to_numpy() == source.loc[found["id_b"]].to_numpy())
    parent = {i: i for i in planted.files["id"]}

    def root(i: str) -> str:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in zip(found["id_a"], found["id_b"], strict=True):
        parent[root(a)] = root(b)
    recovered = sum(root(a) == root(b) for a, b in (sorted(p) for p in planted.pairs))
    return {
        "precision": float(correct.mean()) if len(found) else 1.0,
        "recall": recovered / len(planted.pairs) if planted.pairs else 1.0,
        "pairs_found": int(len(found)), "pairs_planted": len(planted.pairs),
    }
