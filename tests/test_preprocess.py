"""Per-image transforms and packing a split into one memory-mappable array."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from podium.preprocess.pack import pack_split
from podium.preprocess.transforms import (
    PreprocessSettings,
    apply_clahe,
    decode_image,
    preprocess_image,
    resize_square,
    to_channels,
)


def save(array: np.ndarray, path: Path, mode: str | None = None) -> Path:
    image = Image.fromarray(array) if mode is None else Image.fromarray(array, mode=mode)
    image.save(path)
    return path


# --- decode_image -----------------------------------------------------------------------------


def test_decode_gray_png(tmp_path: Path) -> None:
    pixels = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    image = decode_image(save(pixels, tmp_path / "gray.png"))
    assert image.dtype == np.uint8
    assert image.shape == (6, 8, 1)
    np.testing.assert_array_equal(image[:, :, 0], pixels)


def test_decode_rgb_png_returns_rgb_order(tmp_path: Path) -> None:
    red = np.zeros((5, 7, 3), dtype=np.uint8)
    red[:, :, 0] = 255
    image = decode_image(save(red, tmp_path / "red.png"))
    assert image.shape == (5, 7, 3)
    assert (image[:, :, 0] == 255).all()
    assert (image[:, :, 1:] == 0).all()


def test_decode_rgba_png_returns_rgba_order(tmp_path: Path) -> None:
    pixels = np.zeros((4, 4, 4), dtype=np.uint8)
    pixels[..., 0] = 255  # red
    pixels[..., 2] = 10  # a little blue
    pixels[..., 3] = 128  # half transparent
    image = decode_image(save(pixels, tmp_path / "rgba.png"))
    assert image.shape == (4, 4, 4)
    np.testing.assert_array_equal(image, pixels)


def test_decode_16bit_gray_png_is_scaled_to_8_bits(tmp_path: Path) -> None:
    pixels = np.array([[0, 256 * 100], [65535, 300]], dtype=np.uint16)
    path = save(pixels, tmp_path / "gray16.png")
    assert Image.open(path).mode == "I;16"  # really a 16-bit file
    image = decode_image(path)
    assert image.dtype == np.uint8
    assert image.shape == (2, 2, 1)
    np.testing.assert_array_equal(image[:, :, 0], [[0, 100], [255, 1]])


def test_decode_garbage_raises(tmp_path: Path) -> None:
    path = tmp_path / "junk.png"
    path.write_bytes(b"not an image" * 10)
    with pytest.raises(ValueError, match="could not decode"):
        decode_image(path)


# --- to_channels and resize_square -------------------------------------------------------------


def test_gray_to_three_channels_repeats_the_plane() -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4, 1)
    rgb = to_channels(gray, 3)
    assert rgb.shape == (3, 4, 3)
    for c in range(3):
        np.testing.assert_array_equal(rgb[:, :, c], gray[:, :, 0])


def test_rgb_to_one_channel_is_luminance() -> None:
    rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    rgb[0, :, 0] = 255  # red row
    rgb[1, :, 1] = 255  # green row
    gray = to_channels(rgb, 1)
    assert gray.shape == (2, 3, 1)
    assert (gray[0] == 76).all()  # 0.299 * 255
    assert (gray[1] == 150).all()  # 0.587 * 255


def test_rgba_drops_alpha() -> None:
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 7
    rgb = to_channels(rgba, 3)
    assert rgb.shape == (2, 2, 3)
    assert (rgb[..., 0] == 200).all()
    assert (rgb[..., 1:] == 0).all()
    assert to_channels(rgba, 1).shape == (2, 2, 1)


def test_same_channel_count_is_unchanged() -> None:
    image = np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    np.testing.assert_array_equal(to_channels(image, 3), image)


@pytest.mark.parametrize(
    ("shape", "size"),
    [((40, 30, 1), 16), ((8, 8, 1), 32), ((10, 20, 3), 24), ((64, 48, 3), 8), ((8, 8, 1), 8)],
)
def test_resize_square_shapes(shape: tuple[int, int, int], size: int) -> None:
    image = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    resized = resize_square(image, size)
    assert resized.shape == (size, size, shape[2])
    assert resized.dtype == np.uint8


@pytest.mark.parametrize("size", [4, 32])
def test_resize_keeps_a_flat_image_flat(size: int) -> None:
    flat = np.full((12, 12, 1), 77, dtype=np.uint8)
    assert (resize_square(flat, size) == 77).all()


# --- apply_clahe ------------------------------------------------------------------------------


def low_contrast(channels: int) -> np.ndarray:
    rng = np.random.default_rng(2)
    return rng.integers(110, 130, (32, 32, channels), dtype=np.uint8)


@pytest.mark.parametrize("channels", [1, 3])
def test_clahe_increases_contrast_and_keeps_shape(channels: int) -> None:
    image = low_contrast(channels)
    out = apply_clahe(image, clip_limit=4.0, tile_grid=4)
    assert out.shape == image.shape
    assert out.dtype == np.uint8
    assert out.std() > image.std() * 1.5


# --- pack_split -------------------------------------------------------------------------------


@pytest.fixture
def mixed_manifest(tmp_path: Path) -> pd.DataFrame:
    """Train and test images of different sizes and colour modes, splits interleaved."""
    rng = np.random.default_rng(3)
    rows = []
    for i in range(9):
        split = "test" if i % 3 == 2 else "train"
        shape = [(10, 14), (20, 20, 3), (7, 9, 4)][i % 3]
        path = save(rng.integers(0, 256, shape, dtype=np.uint8), tmp_path / f"im{i}.png")
        rows.append({"id": f"id_{i}", "split": split, "path": str(path)})
    return pd.DataFrame(rows)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("channels", [1, 3])
def test_pack_split_rows_match_preprocess_image(
    mixed_manifest: pd.DataFrame, tmp_path: Path, threads: int, channels: int
) -> None:
    settings = PreprocessSettings(size=12, channels=channels, clahe=True)
    array_path = tmp_path / "packed" / "train.npy"
    index_path = tmp_path / "packed" / "train_index.parquet"
    pack_split(mixed_manifest, "train", settings, array_path, index_path, threads=threads)

    packed = np.load(array_path, mmap_mode="r")
    assert isinstance(packed, np.memmap)
    train = mixed_manifest[mixed_manifest["split"] == "train"]
    assert packed.shape == (len(train), 12, 12, channels)
    assert packed.dtype == np.uint8
    for row, path in enumerate(train["path"]):
        np.testing.assert_array_equal(packed[row], preprocess_image(path, settings))

    index = pd.read_parquet(index_path)
    assert list(index.columns) == ["id", "row"]
    assert index["id"].tolist() == train["id"].tolist()
    assert index["row"].tolist() == list(range(len(train)))
    assert not list(array_path.parent.glob(".*tmp*"))


def test_pack_split_same_result_with_threads(mixed_manifest: pd.DataFrame, tmp_path: Path
                                             ) -> None:
    settings = PreprocessSettings(size=16, channels=1)
    arrays = []
    for threads in (1, 2):
        path = tmp_path / f"t{threads}.npy"
        pack_split(mixed_manifest, "test", settings, path, tmp_path / f"t{threads}.parquet",
                   threads=threads)
        arrays.append(np.load(path))
    assert arrays[0].shape == (3, 16, 16, 1)
    np.testing.assert_array_equal(arrays[0], arrays[1])
