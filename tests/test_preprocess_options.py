"""Preprocessing options on real files: EXIF orientation, resize modes, CLAHE modes, haze
removal, uint16 output, 4-channel TIFF stacks."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image, ImageOps

from podium.preprocess.decode import apply_orientation, decode_image, read_exif_orientation
from podium.preprocess.dehaze import dehaze, guided_filter, patch_size
from podium.preprocess.pack import pack_split
from podium.preprocess.transforms import (
    PreprocessSettings,
    apply_clahe,
    preprocess_image,
    resize_square,
    to_channels,
)
from podium.train.data import normalize


def save(array: np.ndarray, path: Path, **params: object) -> Path:
    Image.fromarray(array).save(path, **params)
    return path


def asymmetric_rgb(height: int = 24, width: int = 40) -> np.ndarray:
    """Quadrants and a ramp, so every flip and rotation gives a different image."""
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[: height // 2, : width // 2, 0] = 255
    image[:, :, 1] = np.linspace(0, 250, width, dtype=np.uint8)
    image[height // 2 :, :, 2] = 200
    return image


# --- EXIF orientation ---------------------------------------------------------------------------


def write_oriented_jpeg(path: Path, pixels: np.ndarray, orientation: int) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return save(pixels, path, exif=exif, quality=95)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_exif_orientation_matches_pil_exif_transpose(tmp_path: Path, orientation: int
                                                          ) -> None:
    path = write_oriented_jpeg(tmp_path / f"o{orientation}.jpg", asymmetric_rgb(), orientation)
    assert read_exif_orientation(np.fromfile(path, dtype=np.uint8)) == orientation
    with Image.open(path) as image:
        expected = np.asarray(ImageOps.exif_transpose(image))
    decoded = decode_image(path)
    assert decoded.shape == expected.shape == ((40, 24, 3) if orientation >= 5 else (24, 40, 3))
    np.testing.assert_allclose(decoded, expected, atol=2)  # two JPEG decoders, same file


def test_exif_orientation_can_be_turned_off(tmp_path: Path) -> None:
    path = write_oriented_jpeg(tmp_path / "o6.jpg", asymmetric_rgb(), 6)
    stored = decode_image(path, exif_orientation=False)
    assert stored.shape == (24, 40, 3)
    np.testing.assert_array_equal(decode_image(path), np.rot90(stored, k=-1))
    upright = preprocess_image(path, PreprocessSettings(size=24, channels=3, clahe=False))
    as_stored = preprocess_image(path, PreprocessSettings(size=24, channels=3, clahe=False,
                                                          exif_orientation=False))
    np.testing.assert_allclose(upright, np.rot90(as_stored, k=-1), atol=1)  # area resampling


def test_orientation_of_gray_and_plain_files(tmp_path: Path) -> None:
    gray = asymmetric_rgb()[:, :, 1]
    path = write_oriented_jpeg(tmp_path / "gray.jpg", gray, 8)
    with Image.open(path) as image:
        expected = np.asarray(ImageOps.exif_transpose(image))
    decoded = decode_image(path)
    assert decoded.shape == (40, 24, 1)
    np.testing.assert_allclose(decoded[:, :, 0], expected, atol=2)
    plain = save(gray, tmp_path / "plain.jpg")
    assert read_exif_orientation(np.fromfile(plain, dtype=np.uint8)) == 1
    png = np.fromfile(save(gray, tmp_path / "plain.png"), dtype=np.uint8)
    assert read_exif_orientation(png) == 1


def test_apply_orientation_inverts_rotation() -> None:
    image = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    np.testing.assert_array_equal(apply_orientation(image, 1), image)
    np.testing.assert_array_equal(apply_orientation(np.rot90(image, k=1), 6), image)
    np.testing.assert_array_equal(apply_orientation(np.rot90(image, k=-1), 8), image)


# --- resize modes -------------------------------------------------------------------------------


def test_pad_letterboxes_with_zeros_keeping_aspect_ratio(tmp_path: Path) -> None:
    path = save(np.full((20, 40), 255, dtype=np.uint8), tmp_path / "wide.png")
    image = preprocess_image(path, PreprocessSettings(size=20, clahe=False, resize="pad"))
    assert image.shape == (20, 20, 1)
    assert not image[:5].any() and not image[15:].any()
    assert (image[5:15] == 255).all()
    tall = resize_square(np.full((30, 10, 3), 9, dtype=np.uint8), 60, "pad")  # enlarging
    assert tall.shape == (60, 60, 3)
    assert (tall[:, 20:40] == 9).all()
    assert not tall[:, :20].any() and not tall[:, 40:].any()


def test_center_crop_keeps_the_middle_square(tmp_path: Path) -> None:
    thirds = np.zeros((20, 60, 3), dtype=np.uint8)
    thirds[:, :20, 0] = 255
    thirds[:, 20:40, 1] = 255
    thirds[:, 40:, 2] = 255
    path = save(thirds, tmp_path / "thirds.png")
    image = preprocess_image(path, PreprocessSettings(size=10, channels=3, clahe=False,
                                                      resize="center_crop"))
    assert image.shape == (10, 10, 3)
    np.testing.assert_array_equal(image[..., 1], 255)
    assert not image[..., [0, 2]].any()
    stretched = preprocess_image(path, PreprocessSettings(size=10, channels=3, clahe=False))
    assert stretched[..., 0].any() and stretched[..., 2].any()


@pytest.mark.parametrize("mode", ["stretch", "pad", "center_crop"])
@pytest.mark.parametrize("shape", [(40, 30, 1), (8, 13, 3), (64, 48, 4), (16, 16, 1)])
def test_resize_modes_give_the_square(mode: str, shape: tuple[int, int, int]) -> None:
    image = np.random.default_rng(1).integers(0, 65536, shape, dtype=np.uint16)
    out = resize_square(image, 16, mode)
    assert out.shape == (16, 16, shape[2])
    assert out.dtype == np.uint16


def test_unknown_resize_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="preprocess.resize"):
        PreprocessSettings(resize="fit")


# --- CLAHE modes --------------------------------------------------------------------------------


def low_contrast(shape: tuple[int, ...], dtype: type = np.uint8, seed: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    return rng.integers(int(top * 0.43), int(top * 0.51), shape, dtype=dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_per_channel_clahe_equalises_each_channel_alone(dtype: type) -> None:
    image = low_contrast((32, 32, 4), dtype)
    out = apply_clahe(image, clip_limit=4.0, tile_grid=4, mode="per_channel")
    assert out.shape == image.shape and out.dtype == image.dtype
    for c in range(4):
        alone = apply_clahe(image[:, :, c : c + 1], clip_limit=4.0, tile_grid=4)
        np.testing.assert_array_equal(out[:, :, c : c + 1], alone)
        assert out[:, :, c].std() > image[:, :, c].std() * 1.5


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_lab_clahe_on_colour_keeps_alpha_and_raises_contrast(dtype: type) -> None:
    image = low_contrast((32, 32, 4), dtype)
    out = apply_clahe(image, clip_limit=4.0, tile_grid=4, mode="lab")
    assert out.shape == image.shape and out.dtype == image.dtype
    np.testing.assert_array_equal(out[:, :, 3], image[:, :, 3])
    assert out[:, :, :3].std() > image[:, :, :3].std() * 1.5
    per_channel = apply_clahe(image, clip_limit=4.0, tile_grid=4, mode="per_channel")
    assert not np.array_equal(out[:, :, :3], per_channel[:, :, :3])


def test_lab_clahe_16_bit_on_gray_colour_stays_gray() -> None:
    gray = low_contrast((32, 32, 1), np.uint16)
    out = apply_clahe(np.repeat(gray, 3, axis=2), clip_limit=4.0, tile_grid=4, mode="lab")
    assert np.abs(out.astype(int) - out[:, :, :1]).max() <= 2 * 257  # no hue shift


# --- haze removal -------------------------------------------------------------------------------


def hazy_scene(channels: int) -> tuple[np.ndarray, np.ndarray]:
    """A colourful blocky scene and the same scene behind a bright veil (airlight 0.9, t=0.5)."""
    rng = np.random.default_rng(4)
    blocks = rng.random((16, 16, channels)).astype(np.float32)
    clear = cv2.resize(blocks, (96, 96), interpolation=cv2.INTER_NEAREST).reshape(96, 96, -1)
    hazy = clear * 0.5 + 0.9 * 0.5
    return (np.rint(clear * 255).astype(np.uint8), np.rint(hazy * 255).astype(np.uint8))


def test_dehaze_darkens_and_restores_contrast(tmp_path: Path) -> None:
    clear, hazy = hazy_scene(3)
    path = save(hazy, tmp_path / "hazy.png")
    settings = PreprocessSettings(size=96, channels=3, clahe=False)
    before = preprocess_image(path, settings)
    after = preprocess_image(path, PreprocessSettings(size=96, channels=3, clahe=False,
                                                      dehaze=True))
    np.testing.assert_array_equal(before, hazy)
    assert after.shape == before.shape and after.dtype == np.uint8
    assert after.mean() < before.mean() - 20
    assert after.std() > before.std() * 1.5
    assert abs(after.mean() - clear.mean()) < abs(before.mean() - clear.mean())


def test_dehaze_gray_and_uint16_pass_through(tmp_path: Path) -> None:
    _, hazy = hazy_scene(1)
    path = save(hazy[:, :, 0], tmp_path / "gray.png")
    out = preprocess_image(path, PreprocessSettings(size=48, channels=1, dehaze=True))
    assert out.shape == (48, 48, 1) and out.dtype == np.uint8
    wide = dehaze(hazy.astype(np.uint16) * np.uint16(257))
    assert wide.dtype == np.uint16 and wide.shape == hazy.shape
    assert wide.std() > hazy.std() * 257


def test_guided_filter_keeps_a_constant_and_patch_scales() -> None:
    guide = np.random.default_rng(5).random((20, 30)).astype(np.float32)
    flat = np.full((20, 30), 0.25, dtype=np.float32)
    np.testing.assert_allclose(guided_filter(guide, flat, 4, 1e-3), flat, atol=1e-5)
    assert patch_size(600, 800) == 15
    assert patch_size(32, 32) == 3
    assert patch_size(1200, 1200) % 2 == 1


# --- uint16 output ------------------------------------------------------------------------------


def test_uint16_keeps_16_bit_precision_and_scales_8_bit(tmp_path: Path) -> None:
    deep = np.array([[0, 1, 257, 65535], [300, 40000, 12345, 7]], dtype=np.uint16)
    path = save(deep, tmp_path / "deep.png")
    settings = PreprocessSettings(size=4, channels=1, clahe=False, dtype="uint16",
                                  resize="pad")
    image = preprocess_image(path, settings)
    assert image.dtype == np.uint16
    np.testing.assert_array_equal(image[1:3, :, 0], deep)
    shallow = np.array([[0, 1, 128, 255]], dtype=np.uint8)
    decoded = decode_image(save(shallow, tmp_path / "shallow.png"), dtype="uint16")
    np.testing.assert_array_equal(decoded[:, :, 0], shallow.astype(np.uint16) * 257)
    assert decoded[0, 3, 0] == 65535


def test_uint16_pack_normalizes_like_uint8(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    paths = [save(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8), tmp_path / f"{i}.png")
             for i in range(3)]
    manifest = pd.DataFrame({"id": list("abc"), "split": "test", "path": paths})
    batches = {}
    for dtype in ("uint8", "uint16"):
        settings = PreprocessSettings(size=20, channels=3, clahe=False, dtype=dtype)
        pack_split(manifest, "test", settings, tmp_path / f"{dtype}.npy",
                   tmp_path / f"{dtype}.parquet")
        packed = np.load(tmp_path / f"{dtype}.npy")
        assert packed.dtype == np.dtype(dtype)
        batches[dtype] = normalize(torch.from_numpy(packed))
    np.testing.assert_allclose(batches["uint16"], batches["uint8"], atol=1e-6)
    assert normalize(torch.tensor([0, 65535], dtype=torch.uint16)).tolist() == [-1.0, 1.0]
    assert normalize(torch.tensor([0, 255], dtype=torch.uint8)).tolist() == [-1.0, 1.0]


# --- 4-channel TIFF stacks ----------------------------------------------------------------------


def test_rgby_tiff_8_bit_keeps_all_four_channels_exactly(tmp_path: Path) -> None:
    rgby = np.random.default_rng(7).integers(0, 256, (12, 10, 4), dtype=np.uint8)
    path = tmp_path / "rgby.tif"
    Image.fromarray(rgby, mode="RGBA").save(path)
    np.testing.assert_array_equal(decode_image(path), rgby)  # no alpha premultiplication
    image = preprocess_image(path, PreprocessSettings(size=10, channels=4, clahe=False,
                                                      resize="center_crop"))
    np.testing.assert_array_equal(image, rgby[1:11])


def test_rgby_tiff_16_bit_and_multipage_stack(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    rgby = rng.integers(0, 65536, (12, 10, 4), dtype=np.uint16)
    path = tmp_path / "rgby16.tif"
    assert cv2.imwrite(str(path), rgby[:, :, [2, 1, 0, 3]])  # OpenCV writes BGRA order
    np.testing.assert_array_equal(decode_image(path, dtype="uint16"), rgby)
    np.testing.assert_array_equal(decode_image(path), (rgby >> 8).astype(np.uint8))

    pages = [rng.integers(0, 65536, (12, 10), dtype=np.uint16) for _ in range(4)]
    stack = tmp_path / "pages.tif"
    assert cv2.imwritemulti(str(stack), pages)
    settings = PreprocessSettings(size=12, channels=4, clahe=True, clahe_mode="per_channel",
                                  dtype="uint16", resize="pad")
    image = preprocess_image(stack, settings)
    assert image.shape == (12, 12, 4) and image.dtype == np.uint16
    np.testing.assert_array_equal(decode_image(stack, dtype="uint16"), np.stack(pages, axis=2))


def test_four_channels_are_never_invented(tmp_path: Path) -> None:
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    np.testing.assert_array_equal(to_channels(rgba, 4), rgba)
    with pytest.raises(ValueError, match="cannot make 4 channels from a 3-channel"):
        to_channels(np.zeros((4, 4, 3), dtype=np.uint8), 4)
    path = save(np.zeros((4, 4), dtype=np.uint8), tmp_path / "gray.png")
    with pytest.raises(ValueError, match="gray.png: cannot make 4 channels from a 1-channel"):
        preprocess_image(path, PreprocessSettings(channels=4))


@pytest.mark.parametrize(
    ("field", "value"), [("channels", 2), ("clahe_mode", "rgb"), ("dtype", "float32")]
)
def test_invalid_settings_are_refused(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"preprocess.{field}"):
        PreprocessSettings(**{field: value})
