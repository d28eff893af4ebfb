"""The embedded shapes competition: layout, masks that match the images, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from podium.errors import PodiumInputError
from podium.tasks.segment.rle import rle_decode
from podium.tasks.segment.shapes import write_shapes_competition


@pytest.fixture(scope="module")
def shapes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("shapes") / "comp"
    write_shapes_competition(out, n_images=120, size=48, seed=3)
    return out


def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=False)  # empty rle stays ""


def test_folder_has_the_files_and_columns(shapes: Path) -> None:
    train, test = _csv(shapes / "train.csv"), _csv(shapes / "sample_submission.csv")
    solution = _csv(shapes / "solution.csv")
    for frame in (train, test, solution):
        assert list(frame.columns) == ["id", "rle"]
    assert len(train) + len(test) == 120
    assert len(test) == 30
    assert (test["rle"] == "").all()
    assert list(solution["id"]) == list(test["id"])
    assert set(train["id"]).isdisjoint(test["id"])
    assert all(name.startswith("img") and len(name) == 7 for name in train["id"])
    assert sorted(p.stem for p in (shapes / "train").glob("*.png")) == sorted(train["id"])
    assert sorted(p.stem for p in (shapes / "test").glob("*.png")) == sorted(test["id"])
    image = np.array(Image.open(shapes / "train" / f"{train['id'][0]}.png"))
    assert image.shape == (48, 48)
    assert image.dtype == np.uint8


def test_masks_are_brighter_than_the_background(shapes: Path) -> None:
    for split, table in (("train", "train.csv"), ("test", "solution.csv")):
        for row in _csv(shapes / table).itertuples():
            mask = rle_decode(row.rle, (48, 48)).astype(bool)
            if not mask.any():
                continue
            image = np.array(Image.open(shapes / split / f"{row.id}.png"), dtype=np.float64)
            assert image[mask].mean() > image[~mask].mean() + 30, row.id


def test_about_empty_fraction_of_masks_are_empty(shapes: Path) -> None:
    rles = pd.concat([_csv(shapes / "train.csv"), _csv(shapes / "solution.csv")])["rle"]
    assert (rles == "").mean() == pytest.approx(0.3)  # exactly round(0.3 * 120) images
    train = _csv(shapes / "train.csv")["rle"]
    assert 0.15 < (train == "").mean() < 0.45


def test_same_seed_writes_identical_files(tmp_path: Path) -> None:
    write_shapes_competition(tmp_path / "a", n_images=20, size=32, seed=5)
    write_shapes_competition(tmp_path / "b", n_images=20, size=32, seed=5)
    write_shapes_competition(tmp_path / "c", n_images=20, size=32, seed=6)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.*"))
    assert len(files) == 20 + 3
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    other = (tmp_path / "c" / "train.csv").read_bytes()
    assert (tmp_path / "a" / "train.csv").read_bytes() != other


def test_non_empty_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("x")
    with pytest.raises(PodiumInputError, match="not empty"):
        write_shapes_competition(tmp_path, n_images=4)


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PodiumInputError, match="test_fraction"):
        write_shapes_competition(tmp_path / "a", test_fraction=1.5)
    with pytest.raises(PodiumInputError, match="empty_fraction"):
        write_shapes_competition(tmp_path / "b", empty_fraction=-0.1)
    with pytest.raises(PodiumInputError, match="leave train or test empty"):
        write_shapes_competition(tmp_path / "c", n_images=1)
