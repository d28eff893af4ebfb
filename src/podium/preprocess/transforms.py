"""Per-image transforms, all in OpenCV/numpy (the fastest of the common choices on a CPU).

This module orchestrates: decode (``decode``, ``dicom``), channels, resize, haze removal
(``dehaze``), then CLAHE, as the config's ``preprocess`` section says.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from podium.preprocess.decode import DTYPES, decode_image
from podium.preprocess.dehaze import dehaze
from podium.schema import schema_field

CHANNELS = (1, 3, 4)
RESIZE_MODES = ("stretch", "pad", "center_crop")
CLAHE_MODES = ("lab", "per_channel")


def _windows(value: object) -> tuple[tuple[float, float], ...] | None:
    """Config gives lists of ``[center, width]``; keep them as hashable float tuples."""
    if value is None:
        return None
    windows = tuple(tuple(float(x) for x in window) for window in value)
    if not windows:
        raise ValueError("dicom_windows: list at least one [center, width] window, or use null")
    for window in windows:
        if len(window) != 2 or window[1] <= 0:
            raise ValueError(
                f"dicom_windows: {list(window)} is not a [center, width] pair with width > 0"
            )
    return windows


@dataclass(frozen=True)
class PreprocessSettings:
    """The config's ``preprocess`` section (the schema's defaults); invalid values fail here,
    before any image."""

    size: int = schema_field("preprocess", "size")
    channels: int = schema_field("preprocess", "channels")  # 4 only from RGBA, RGBY sources
    clahe: bool = schema_field("preprocess", "clahe")
    clahe_clip_limit: float = schema_field("preprocess", "clahe_clip_limit")
    clahe_tile_grid: int = schema_field("preprocess", "clahe_tile_grid")
    clahe_mode: str = schema_field("preprocess", "clahe_mode")  # lab or per_channel
    resize: str = schema_field("preprocess", "resize")  # stretch, pad or center_crop
    exif_orientation: bool = schema_field("preprocess", "exif_orientation")
    # (center, width) windows in HU
    dicom_windows: tuple[tuple[float, float], ...] | None = schema_field(
        "preprocess", "dicom_windows")
    dehaze: bool = schema_field("preprocess", "dehaze")  # dark channel prior, before CLAHE
    dtype: str = schema_field("preprocess", "dtype")  # uint8 or uint16 packed arrays

    def __post_init__(self) -> None:
        object.__setattr__(self, "dicom_windows", _windows(self.dicom_windows))
        for name, value, allowed in (
            ("channels", self.channels, CHANNELS),
            ("resize", self.resize, RESIZE_MODES),
            ("clahe_mode", self.clahe_mode, CLAHE_MODES),
            ("dtype", self.dtype, DTYPES),
        ):
            if value not in allowed:
                raise ValueError(f"preprocess.{name}: {value!r} is not one of {list(allowed)}")


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """Convert gray, RGB or RGBA to the model's channel count (1, 3 or 4).

    Four channels are only ever kept (RGBY stacks, RGBA): making them from fewer would invent
    a channel the model then learns nothing from.
    """
    have = image.shape[2]
    if have == channels:
        return image
    if channels == 4:
        raise ValueError(
            f"cannot make 4 channels from a {have}-channel image: channels 4 needs 4-channel "
            "sources (RGBA or RGBY TIFF/PNG); use channels 1 or 3 for these images"
        )
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


def _resize(image: np.ndarray, width: int, height: int, shrinking: bool) -> np.ndarray:
    """INTER_AREA when shrinking (no aliasing), bicubic when enlarging."""
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    resized = cv2.resize(image, (width, height), interpolation=interpolation)
    return resized[:, :, None] if resized.ndim == 2 else resized


def _stretch(image: np.ndarray, size: int) -> np.ndarray:
    height, width = image.shape[:2]
    if (height, width) == (size, size):
        return image
    return _resize(image, size, size, size < min(height, width))


def _pad(image: np.ndarray, size: int) -> np.ndarray:
    """Letterbox: longer side to ``size``, aspect ratio kept, zeros around, image centred."""
    height, width = image.shape[:2]
    scale = size / max(height, width)
    new_height = min(size, max(1, round(height * scale)))
    new_width = min(size, max(1, round(width * scale)))
    if (new_height, new_width) != (height, width):
        image = _resize(image, new_width, new_height, scale < 1)
    out = np.zeros((size, size, image.shape[2]), dtype=image.dtype)
    top, left = (size - new_height) // 2, (size - new_width) // 2
    out[top : top + new_height, left : left + new_width] = image
    return out


def _center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The central square (the shorter side's length), then resized to ``size``."""
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return _stretch(image[top : top + side, left : left + side], size)


def resize_square(image: np.ndarray, size: int, mode: str = "stretch") -> np.ndarray:
    """Bring an image to ``size x size``: ``stretch`` (aspect ratio lost), ``pad`` (letterbox
    with zeros) or ``center_crop`` (edges lost). INTER_AREA shrinks, bicubic enlarges."""
    if mode == "stretch":
        return _stretch(image, size)
    if mode == "pad":
        return _pad(image, size)
    if mode == "center_crop":
        return _center_crop(image, size)
    raise ValueError(f"resize mode {mode!r} is not one of {list(RESIZE_MODES)}")


def _clahe_lab_uint16(image: np.ndarray, clahe: cv2.CLAHE) -> np.ndarray:
    """LAB for 16-bit RGB: OpenCV converts only 8-bit and float, so L goes through float32."""
    lab = cv2.cvtColor(image.astype(np.float32) / np.float32(65535), cv2.COLOR_RGB2LAB)
    lightness = np.rint(lab[:, :, 0] * np.float32(655.35)).astype(np.uint16)
    lab[:, :, 0] = clahe.apply(lightness).astype(np.float32) / np.float32(655.35)
    rgb = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
    return np.rint(np.clip(rgb, 0.0, 1.0) * np.float32(65535)).astype(np.uint16)


def apply_clahe(
    image: np.ndarray, clip_limit: float, tile_grid: int, mode: str = "lab"
) -> np.ndarray:
    """CLAHE (uint8 or uint16), one channel at a time or on lightness only.

    ``lab``: gray images directly, colour ones on the L channel of LAB, so hues do not shift
    (a fourth channel, RGBA's alpha, is left as it is). ``per_channel``: every channel on its
    own, for channels that are separate measurements (RGBY stains, stacked DICOM windows).
    """
    clahe = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(tile_grid, tile_grid))
    channels = image.shape[2]
    if channels == 1:
        return clahe.apply(image[:, :, 0])[:, :, None]
    if mode == "per_channel":
        return np.stack(
            [clahe.apply(np.ascontiguousarray(image[:, :, c])) for c in range(channels)], axis=2
        )
    if mode != "lab":
        raise ValueError(f"clahe mode {mode!r} is not one of {list(CLAHE_MODES)}")
    if channels not in (3, 4):
        raise ValueError(f"clahe mode lab needs 1, 3 or 4 channels, not {channels}")
    if channels == 4:
        rgb = apply_clahe(np.ascontiguousarray(image[:, :, :3]), clip_limit, tile_grid, mode)
        return np.concatenate([rgb, image[:, :, 3:]], axis=2)
    if image.dtype == np.uint16:
        return _clahe_lab_uint16(image, clahe)
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)
    lab[:, :, 0] = clahe.apply(lab[:, :, 0])
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def preprocess_image(path: str | Path, settings: PreprocessSettings) -> np.ndarray:
    """Decode, convert channels, resize, dehaze, then CLAHE (both on the small image: cheaper,
    and the dehaze patch scales with the image, so the effect is the same)."""
    image = decode_image(
        path,
        dtype=settings.dtype,
        exif_orientation=settings.exif_orientation,
        dicom_windows=settings.dicom_windows,
    )
    try:
        image = to_channels(image, settings.channels)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
    image = resize_square(image, settings.size, settings.resize)
    if settings.dehaze:
        image = dehaze(image)
    if settings.clahe:
        image = apply_clahe(
            image, settings.clahe_clip_limit, settings.clahe_tile_grid, settings.clahe_mode
        )
    return image
