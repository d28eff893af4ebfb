"""DICOM decoding on pydicom's own CT test file: HU, windows, MONOCHROME1, packing."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.data import get_testdata_file

from podium.preprocess.decode import decode_image
from podium.preprocess.dicom import apply_windows, decode_dicom, scale_min_max, to_hounsfield
from podium.preprocess.pack import pack_split
from podium.preprocess.transforms import PreprocessSettings, preprocess_image

CT_SMALL = Path(get_testdata_file("CT_small.dcm"))  # 128x128 int16 CT, slope 1, intercept -1024
BRAIN = (40.0, 400.0)  # HU -160..240
WINDOWS = ((40, 80), (80, 200), (600, 2800))  # brain, subdural, bone


@pytest.fixture
def ct_hu() -> np.ndarray:
    return to_hounsfield(pydicom.dcmread(CT_SMALL))


def edited_copy(tmp_path: Path, name: str, **changes: object) -> Path:
    """A copy of CT_small.dcm with header elements changed (value None deletes one)."""
    dataset = pydicom.dcmread(CT_SMALL)
    for keyword, value in changes.items():
        if value is None:
            delattr(dataset, keyword)
        else:
            setattr(dataset, keyword, value)
    path = tmp_path / name
    dataset.save_as(path)
    return path


def test_ct_small_converts_to_hounsfield_units(ct_hu: np.ndarray) -> None:
    stored = pydicom.dcmread(CT_SMALL).pixel_array
    assert stored.dtype == np.int16
    assert ct_hu.shape == (128, 128)
    assert ct_hu.dtype == np.float32
    assert ct_hu.min() == -896.0
    assert ct_hu.max() == 1167.0
    np.testing.assert_array_equal(ct_hu, stored.astype(np.float32) - 1024.0)


def test_missing_rescale_defaults_to_slope_one_intercept_zero(tmp_path: Path) -> None:
    path = edited_copy(tmp_path, "raw.dcm", RescaleSlope=None, RescaleIntercept=None)
    dataset = pydicom.dcmread(path)
    assert "RescaleSlope" not in dataset
    np.testing.assert_array_equal(to_hounsfield(dataset), dataset.pixel_array.astype(np.float32))


def test_rescale_slope_is_applied(tmp_path: Path, ct_hu: np.ndarray) -> None:
    path = edited_copy(tmp_path, "slope.dcm", RescaleSlope=2, RescaleIntercept=-2048)
    np.testing.assert_array_equal(to_hounsfield(pydicom.dcmread(path)), 2 * ct_hu)


def test_window_maps_its_edges_to_0_and_255() -> None:
    hu = np.array([[-1000.0, -160.0, 140.0, 240.0, 3000.0]], dtype=np.float32)
    out = apply_windows(hu, [BRAIN])
    assert out.shape == (1, 5, 1)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out[0, :, 0], [0, 0, 191, 255, 255])  # 300 * 255 / 400 = 191.25
    wide = apply_windows(hu, [BRAIN], dtype="uint16")
    assert wide.dtype == np.uint16
    np.testing.assert_array_equal(wide[0, :, 0], [0, 0, 49151, 65535, 65535])


def test_window_on_the_ct_pixels(ct_hu: np.ndarray) -> None:
    image = decode_dicom(CT_SMALL, [BRAIN])
    assert image.shape == (128, 128, 1)
    assert image.dtype == np.uint8
    plane = image[:, :, 0]
    assert (ct_hu == -160).any() and (ct_hu == 240).any()  # the file has both edge values
    assert (plane[ct_hu == -160] == 0).all()
    assert (plane[ct_hu == 240] == 255).all()
    assert (plane[ct_hu < -160] == 0).all()
    assert (plane[ct_hu > 240] == 255).all()
    inside = (ct_hu > -160) & (ct_hu < 240)
    expected = (ct_hu[inside] + 160) * 255 / 400
    np.testing.assert_allclose(plane[inside], expected, atol=0.5 + 1e-3)  # rounded linear map


def test_three_windows_give_three_channels() -> None:
    image = decode_dicom(CT_SMALL, WINDOWS)
    assert image.shape == (128, 128, 3)
    for channel, window in enumerate(WINDOWS):
        single = decode_dicom(CT_SMALL, [window])
        np.testing.assert_array_equal(image[:, :, channel], single[:, :, 0])
    assert len({image[:, :, c].tobytes() for c in range(3)}) == 3


def test_no_windows_means_min_max_scaling(ct_hu: np.ndarray) -> None:
    image = decode_dicom(CT_SMALL)
    assert image.shape == (128, 128, 1)
    assert image[:, :, 0][ct_hu == ct_hu.min()].min() == 0
    assert image[:, :, 0][ct_hu == ct_hu.max()].max() == 255
    wide = decode_dicom(CT_SMALL, dtype="uint16")
    assert wide.dtype == np.uint16 and wide.min() == 0 and wide.max() == 65535
    flat = scale_min_max(np.full((3, 4), 7.0, dtype=np.float32))
    assert flat.shape == (3, 4, 1) and not flat.any()


def test_monochrome1_is_inverted(tmp_path: Path) -> None:
    path = edited_copy(tmp_path, "mono1.dcm", PhotometricInterpretation="MONOCHROME1")
    for windows in (None, WINDOWS):
        normal = decode_dicom(CT_SMALL, windows)
        inverted = decode_dicom(path, windows)
        np.testing.assert_array_equal(inverted, 255 - normal)


def test_dicom_is_found_by_its_magic_without_suffix(tmp_path: Path) -> None:
    path = tmp_path / "scan.img"
    shutil.copy(CT_SMALL, path)
    np.testing.assert_array_equal(decode_image(path, dicom_windows=WINDOWS),
                                  decode_dicom(CT_SMALL, WINDOWS))


def test_corrupt_dicom_raises_value_error_naming_the_file(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.dcm"
    garbage.write_bytes(b"not a dicom file" * 20)
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(CT_SMALL.read_bytes()[:20000])
    for path in (garbage, truncated):
        with pytest.raises(ValueError, match=f"{path.name}: pydicom could not decode"):
            decode_image(path)


def test_preprocess_dicom_with_windows_from_config_lists(tmp_path: Path) -> None:
    settings = PreprocessSettings(size=64, channels=3, clahe=False,
                                  dicom_windows=[[40, 80], [80, 200], [600, 2800]])
    assert settings.dicom_windows == ((40.0, 80.0), (80.0, 200.0), (600.0, 2800.0))
    hash(settings)  # frozen settings stay hashable with list input
    image = preprocess_image(CT_SMALL, settings)
    assert image.shape == (64, 64, 3)
    assert image.dtype == np.uint8


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_pack_split_of_dicom_files(tmp_path: Path, dtype: str) -> None:
    paths = [shutil.copy(CT_SMALL, tmp_path / f"ct{i}.dcm") for i in range(3)]
    manifest = pd.DataFrame({"id": ["a", "b", "c"], "split": "train", "path": paths})
    settings = PreprocessSettings(size=128, channels=3, clahe=False, dicom_windows=WINDOWS,
                                  dtype=dtype)
    pack_split(manifest, "train", settings, tmp_path / "train.npy", tmp_path / "index.parquet")
    packed = np.load(tmp_path / "train.npy")
    assert packed.shape == (3, 128, 128, 3)
    assert packed.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(packed[1], decode_dicom(CT_SMALL, WINDOWS, dtype))


@pytest.mark.parametrize("windows", [[], [[40, 0]], [[40]], [[40, -10]]])
def test_bad_windows_are_refused(windows: list) -> None:
    with pytest.raises(ValueError, match="dicom_windows"):
        PreprocessSettings(dicom_windows=windows)
