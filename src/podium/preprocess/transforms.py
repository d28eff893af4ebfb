"""Per-image transforms, all in OpenCV (the fastest of the common choices on a CPU)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass(frozen=True)
class PreprocessSettings:
    """The config's ``preprocess`` section."""

    size: int = 32
    channels: int = 1
    clahe: bool = True
    clahe_clip_limit: float = 2.0
    clahe_tile_grid: int = 4


def decode_image(path: str | Path) -> np.ndarray:
    """Decode a file to ``H x W x C`` uint8 RGB(A) or gray; 16-bit images are scaled to 8 bits."""
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{path}: OpenCV could not decode the image")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if image.ndim == 2:
        return image[:, :, None]
    if image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    return image


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """Convert gray, RGB or RGBA to the model's channel count (1 or 3)."""
    have = image.shape[2]
    if have == channels:
        return image
    if have == 4:
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2RGB)
        have = 3
    if channels == 1 and have == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[:, :, None]
    if channels == 3 and have == 1:
        return np.repeat(image, 3, axis=2)
    if have == channels:
        return image
    raise ValueError(f"cannot convert a {have}-channel image to {channels} channels")


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Stretch to ``size x size``: INTER_AREA when shrinking, bicubic when enlarging."""
    height, width = image.shape[:2]
    if (height, width) == (size, size):
        return image
    shrinking = size < min(height, width)
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    resized = cv2.resize(image, (size, size), interpolation=interpolation)
    return resized[:, :, None] if resized.ndim == 2 else resized


def apply_clahe(image: np.ndarray, clip_limit: float, tile_grid: int) -> np.ndarray:
    """CLAHE on gray images directly and on the L channel of LAB for colour ones."""
    clahe = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(tile_grid, tile_grid))
    if image.shape[2] == 1:
        return clahe.apply(image[:, :, 0])[:, :, None]
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
    lab[:, :, 0] = clahe.apply(lab[:, :, 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def preprocess_image(path: str | Path, settings: PreprocessSettings) -> np.ndarray:
    """Decode, convert channels, resize, then CLAHE (on the small image: cheaper, same effect)."""
    image = to_channels(decode_image(path), settings.channels)
    image = resize_square(image, settings.size)
    if settings.clahe:
        image = apply_clahe(image, settings.clahe_clip_limit, settings.clahe_tile_grid)
    return image
