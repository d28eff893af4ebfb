"""DICOM decoding: stored values to Hounsfield units, then radiologist-style windows.

CT competitions are won on several windows stacked as channels (brain, subdural, bone...):
each window shows its own HU range at full contrast, which one min-max scaling of the whole
-1000..3000 HU range would wash out.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pydicom

DICOM_SUFFIXES = (".dcm", ".dicom")
_FULL_SCALE = {"uint8": 255.0, "uint16": 65535.0}


def looks_like_dicom(path: str | Path, head: bytes | None = None) -> bool:
    """A ``.dcm``/``.dicom`` suffix, or the ``DICM`` magic a Part 10 file has at byte 128."""
    if Path(path).suffix.lower() in DICOM_SUFFIXES:
        return True
    return head is not None and head[128:132] == b"DICM"


def read_dicom(source: str | Path | bytes) -> pydicom.Dataset:
    """Parse a DICOM Part 10 file (path or bytes); raises on files without the DICM header."""
    if isinstance(source, bytes | bytearray | memoryview):
        return pydicom.dcmread(io.BytesIO(source))
    return pydicom.dcmread(str(source))


def _frame(dataset: pydicom.Dataset) -> np.ndarray:
    """The stored pixels of one 2-D image: podium reads the first frame of a multi-frame file."""
    pixels = dataset.pixel_array
    frames = int(dataset.get("NumberOfFrames") or 1)
    return pixels[0] if frames > 1 else pixels


def to_hounsfield(dataset: pydicom.Dataset) -> np.ndarray:
    """Stored values to modality units (HU for CT) as float32: ``value * slope + intercept``.

    Slope and intercept default to 1 and 0 when absent, as the standard says for modalities
    that store calibrated values directly.
    """
    slope = dataset.get("RescaleSlope")
    intercept = dataset.get("RescaleIntercept")
    slope = 1.0 if slope in (None, "") else float(slope)
    intercept = 0.0 if intercept in (None, "") else float(intercept)
    hu = _frame(dataset).astype(np.float32)
    if slope != 1.0:
        hu *= np.float32(slope)
    if intercept != 0.0:
        hu += np.float32(intercept)
    return hu


def apply_windows(
    hu: np.ndarray, windows: Sequence[tuple[float, float]], dtype: str = "uint8"
) -> np.ndarray:
    """``H x W x len(windows)``: each ``(center, width)`` maps ``center -/+ width/2`` linearly
    to the full range of ``dtype`` (0..255 or 0..65535), clipping what lies outside."""
    full = _FULL_SCALE[dtype]
    planes = []
    for center, width in windows:
        if width <= 0:
            raise ValueError(f"DICOM window ({center}, {width}): the width must be positive")
        scaled = (hu - np.float32(center - width / 2)) * np.float32(full / width)
        np.clip(scaled, 0.0, full, out=scaled)
        planes.append(np.rint(scaled).astype(dtype))
    return np.stack(planes, axis=2)


def scale_min_max(values: np.ndarray, dtype: str = "uint8") -> np.ndarray:
    """``H x W x 1`` with the image's own minimum at 0 and maximum at full scale (flat: zeros)."""
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros((*values.shape[:2], 1), dtype=dtype)
    scaled = (values.astype(np.float32) - np.float32(low)) * np.float32(
        _FULL_SCALE[dtype] / (high - low)
    )
    np.clip(scaled, 0.0, _FULL_SCALE[dtype], out=scaled)
    return np.rint(scaled).astype(dtype)[:, :, None]


def _colour(pixels: np.ndarray, dtype: str) -> np.ndarray:
    """Colour DICOM (ultrasound, photos) carries no HU: keep 8-bit values, stretch the rest."""
    if pixels.dtype == np.uint8:
        return pixels if dtype == "uint8" else pixels.astype(np.uint16) * np.uint16(257)
    planes = [scale_min_max(pixels[:, :, c], dtype) for c in range(pixels.shape[2])]
    return np.concatenate(planes, axis=2)


def decode_dicom(
    source: str | Path | bytes,
    windows: Sequence[tuple[float, float]] | None = None,
    dtype: str = "uint8",
) -> np.ndarray:
    """Decode a DICOM file to ``H x W x C`` in ``dtype``.

    Grayscale images go to HU, then to one channel per window (or one min-max scaled channel
    when ``windows`` is None). MONOCHROME1 stores bright as low values, so it is inverted after
    windowing to look like MONOCHROME2. Colour images keep their RGB channels.
    """
    dataset = read_dicom(source)
    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if int(dataset.get("SamplesPerPixel") or 1) > 1:
        return _colour(_frame(dataset), dtype)
    hu = to_hounsfield(dataset)
    image = scale_min_max(hu, dtype) if windows is None else apply_windows(hu, windows, dtype)
    if photometric == "MONOCHROME1":
        image = np.iinfo(image.dtype).max - image
    return image
