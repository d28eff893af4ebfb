"""Decode any competition image file to an ``H x W x C`` RGB(A) or gray array of one dtype.

OpenCV decodes PNG, JPEG, TIFF and the rest (the fastest of the common choices on a CPU);
pydicom decodes DICOM. What OpenCV's ``IMREAD_UNCHANGED`` skips or gets wrong is fixed here:
EXIF orientation of JPEGs, multi-page TIFF channel stacks, and 8-bit 4-channel TIFFs.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from podium.preprocess.dicom import decode_dicom, looks_like_dicom

DTYPES = ("uint8", "uint16")
_EXIF_ORIENTATION_TAG = 0x0112
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF


def to_dtype(image: np.ndarray, dtype: str) -> np.ndarray:
    """Bring decoded pixels to uint8 or uint16 without losing what the target can hold.

    16 to 8 bits keeps the high byte; 8 to 16 bits multiplies by 257 (255 -> 65535); other
    depths (float TIFF, signed) are min-max stretched to the target's range.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r}: use one of {list(DTYPES)}")
    if image.dtype == np.dtype(dtype):
        return image
    if dtype == "uint8":
        if image.dtype == np.uint16:
            return (image >> 8).astype(np.uint8)
        return cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if image.dtype == np.uint8:
        return image.astype(np.uint16) * np.uint16(257)
    stretched = cv2.normalize(image.astype(np.float32), None, 0, 65535, cv2.NORM_MINMAX)
    return np.rint(stretched).astype(np.uint16)


def read_exif_orientation(data: np.ndarray) -> int:
    """The EXIF orientation (1..8) of a JPEG, 1 when absent or unreadable.

    PIL parses the headers only (no pixel decode); files without an ``Exif`` block in their
    first 64 KiB, where APP1 must sit, skip even that.
    """
    if data[:2].tobytes() != b"\xff\xd8" or b"Exif" not in data[:65536].tobytes():
        return 1
    try:
        with Image.open(io.BytesIO(data.tobytes())) as image:
            value = image.getexif().get(_EXIF_ORIENTATION_TAG, 1)
    except Exception:  # a broken EXIF block must not lose an image OpenCV can decode
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Turn stored pixels upright as EXIF orientation 1..8 says (TIFF 6.0 / EXIF 2.3 tag 274)."""
    if orientation == 2:
        image = image[:, ::-1]
    elif orientation == 3:
        image = image[::-1, ::-1]
    elif orientation == 4:
        image = image[::-1]
    elif orientation == 5:
        image = image.swapaxes(0, 1)
    elif orientation == 6:
        image = np.rot90(image, k=-1)
    elif orientation == 7:
        image = image.swapaxes(0, 1)[::-1, ::-1]
    elif orientation == 8:
        image = np.rot90(image, k=1)
    return np.ascontiguousarray(image)


def _bgr_to_rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return image[:, :, None]
    if image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    return image


def _decode_tiff(data: np.ndarray) -> np.ndarray | None:
    """TIFF pages: several single-channel pages of one size are a channel stack (as microscopy
    tools write RGBY); anything else is its first page. 8-bit 4-channel pages come through
    libtiff's RGBA reader, which premultiplies unassociated alpha and so corrupts a fourth
    data channel: PIL reads those exactly."""
    try:
        ok, pages = cv2.imdecodemulti(data, cv2.IMREAD_UNCHANGED)
    except cv2.error:
        return None
    if not ok or not pages:
        return None
    first = pages[0]
    if len(pages) > 1 and all(
        p.ndim == 2 and p.shape == first.shape and p.dtype == first.dtype for p in pages
    ):
        return np.stack(pages, axis=2)
    if first.ndim == 3 and first.shape[2] == 4 and first.dtype == np.uint8:
        with Image.open(io.BytesIO(data.tobytes())) as image:
            if image.mode == "RGBA":
                return np.asarray(image)
    return _bgr_to_rgb(first)


def decode_image(
    path: str | Path,
    *,
    dtype: str = "uint8",
    exif_orientation: bool = True,
    dicom_windows: tuple[tuple[float, float], ...] | None = None,
) -> np.ndarray:
    """Decode a file to ``H x W x C`` RGB(A), gray or channel stack in ``dtype``.

    DICOM goes to HU and through ``dicom_windows`` (min-max scaled when None); JPEGs are
    turned upright by their EXIF orientation unless ``exif_orientation`` is false.
    """
    data = np.fromfile(str(path), dtype=np.uint8)
    head = data[:132].tobytes()
    if looks_like_dicom(path, head):
        try:
            return decode_dicom(data.tobytes(), dicom_windows, dtype)
        except Exception as err:  # pydicom raises many types for corrupt data
            raise ValueError(f"{path}: pydicom could not decode the image ({err})") from err
    if head[:4] in _TIFF_MAGIC:
        image = _decode_tiff(data)
    else:
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        image = None if image is None else _bgr_to_rgb(image)
    if image is None:
        raise ValueError(f"{path}: OpenCV could not decode the image")
    if exif_orientation:
        orientation = read_exif_orientation(data)
        if orientation != 1:
            image = apply_orientation(image, orientation)
    return to_dtype(image, dtype)
