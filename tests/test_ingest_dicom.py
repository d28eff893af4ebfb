"""ingest_competition on a DICOM competition folder: sizes from the header, corrupt files named."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.data import get_testdata_file

from podium.data.ingest import CompetitionLayout, ingest_competition
from podium.errors import PodiumInputError
from podium.preprocess.pack import pack_split
from podium.preprocess.transforms import PreprocessSettings

CT_SMALL = Path(get_testdata_file("CT_small.dcm"))
TRAIN = {"ct0": "bleed", "ct1": "normal", "ct2": "bleed", "ct3": "normal"}
TEST = ["ct4", "ct5"]
DICOM_LAYOUT = {"train_images": "train/{id}.dcm", "test_images": "test/{id}.dcm"}


def write_dicom_competition(root: Path, suffix: str = ".dcm") -> Path:
    """Four train and two test CT slices (copies of pydicom's CT_small.dcm)."""
    for folder in ("train", "test"):
        (root / folder).mkdir(parents=True)
    for image_id in TRAIN:
        shutil.copy(CT_SMALL, root / "train" / f"{image_id}{suffix}")
    for image_id in TEST:
        shutil.copy(CT_SMALL, root / "test" / f"{image_id}{suffix}")
    pd.DataFrame({"id": list(TRAIN), "label": list(TRAIN.values())}).to_csv(
        root / "train.csv", index=False)
    pd.DataFrame({"id": TEST, "label": "normal"}).to_csv(
        root / "sample_submission.csv", index=False)
    return root


@pytest.fixture
def dicom_comp(tmp_path: Path) -> Path:
    return write_dicom_competition(tmp_path / "competition")


def outputs(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "out" / "manifest.parquet", tmp_path / "out" / "task.json"


def ingest(root: Path, tmp_path: Path, threads: int = 1, **layout: str) -> pd.DataFrame:
    manifest_path, task_path = outputs(tmp_path)
    return ingest_competition(CompetitionLayout(root=root, **{**DICOM_LAYOUT, **layout}),
                              manifest_path, task_path, threads=threads)


def ingest_fails(root: Path, tmp_path: Path) -> str:
    """Run ingest, expect PodiumInputError, check nothing was written; return the message."""
    manifest_path, task_path = outputs(tmp_path)
    with pytest.raises(PodiumInputError) as info:
        ingest(root, tmp_path)
    assert not manifest_path.exists() and not task_path.exists()
    return str(info.value)


@pytest.mark.parametrize("threads", [1, 2])
def test_manifest_of_a_dicom_folder(dicom_comp: Path, tmp_path: Path, threads: int) -> None:
    manifest = ingest(dicom_comp, tmp_path, threads=threads)
    on_disk = pd.read_parquet(outputs(tmp_path)[0])
    assert on_disk["id"].tolist() == list(TRAIN) + TEST
    assert on_disk["split"].tolist() == ["train"] * 4 + ["test"] * 2
    assert (on_disk["height"] == 128).all() and (on_disk["width"] == 128).all()
    assert (on_disk["channels"] == 1).all()
    expected_md5 = hashlib.md5(CT_SMALL.read_bytes()).hexdigest()
    assert (on_disk["md5"] == expected_md5).all()
    for row in on_disk.itertuples():
        folder = "train" if row.split == "train" else "test"
        assert Path(row.path) == (dicom_comp / folder / f"{row.id}.dcm").resolve()

    settings = PreprocessSettings(size=32, channels=3, dicom_windows=[[40, 80], [80, 200],
                                                                      [600, 2800]])
    array, index = tmp_path / "train.npy", tmp_path / "train_index.parquet"
    pack_split(manifest, "train", settings, array, index)
    packed = np.load(array)
    assert packed.shape == (4, 32, 32, 3) and packed.dtype == np.uint8
    assert packed.std() > 0


def test_dicom_without_suffix_is_found_by_its_magic(tmp_path: Path) -> None:
    root = write_dicom_competition(tmp_path / "competition", suffix=".img")
    manifest = ingest(root, tmp_path, train_images="train/{id}.img", test_images="test/{id}.img")
    assert (manifest["height"] == 128).all() and (manifest["channels"] == 1).all()


def test_header_sizes_come_from_rows_and_columns(dicom_comp: Path, tmp_path: Path) -> None:
    dataset = pydicom.dcmread(CT_SMALL)
    cropped = dataset.pixel_array[:100, :64].copy()
    dataset.Rows, dataset.Columns = cropped.shape
    dataset.PixelData = cropped.tobytes()
    dataset.save_as(dicom_comp / "train" / "ct1.dcm")
    on_disk = ingest(dicom_comp, tmp_path).set_index("id")
    assert (on_disk.loc["ct1", "height"], on_disk.loc["ct1", "width"]) == (100, 64)
    assert (on_disk.loc["ct0", "height"], on_disk.loc["ct0", "width"]) == (128, 128)


def test_corrupt_and_truncated_dicom_are_reported_together(dicom_comp: Path, tmp_path: Path
                                                           ) -> None:
    garbage = dicom_comp / "train" / "ct0.dcm"
    garbage.write_bytes(b"not a dicom file" * 20)
    truncated = dicom_comp / "test" / "ct5.dcm"
    truncated.write_bytes(CT_SMALL.read_bytes()[:20000])
    message = ingest_fails(dicom_comp, tmp_path)
    assert f"{garbage}: unreadable or truncated image" in message
    assert f"{truncated}: unreadable or truncated image" in message
    assert "ct1.dcm" not in message
