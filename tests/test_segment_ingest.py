"""Ingest of a segmentation competition: RLE masks checked against each image's size, empty
masks kept, bad encodings named by line, and train masks packed beside the images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from podium.data.ingest import CompetitionLayout, ingest_train
from podium.errors import PodiumInputError
from podium.preprocess.pack import pack_split
from podium.preprocess.transforms import PreprocessSettings
from podium.task import TaskSpec
from podium.tasks.segment.masks import pack_masks, rle_area, stratification_labels
from podium.tasks.segment.options import SegmentOptions
from podium.tasks.segment.rle import rle_decode
from podium.tasks.segment.shapes import write_shapes_competition

LAYOUT = {"task": "segmentation", "target": "rle", "metric": "dice"}


@pytest.fixture
def shapes(tmp_path: Path) -> Path:
    root = tmp_path / "shapes"
    write_shapes_competition(root, n_images=40, size=40)
    return root


def test_segmentation_train_side_ingests_rle_masks(shapes, tmp_path):
    manifest = ingest_train(CompetitionLayout(root=shapes, **LAYOUT),
                            tmp_path / "train.parquet", tmp_path / "task.json")
    spec = TaskSpec.load(tmp_path / "task.json")
    assert spec.task == "segmentation" and SegmentOptions.of(spec).mask_order == "F"
    assert spec.classes == ("mask",)
    table = pd.read_csv(shapes / "train.csv", dtype=str, keep_default_na=False)
    assert sorted(manifest["id"]) == sorted(table["id"])
    assert (manifest["target"] == "").sum() == (table["rle"] == "").sum() > 0


def test_a_mask_outside_its_image_is_named_by_line(shapes, tmp_path):
    table = pd.read_csv(shapes / "train.csv", dtype=str, keep_default_na=False)
    table.loc[3, "rle"] = "1 5 1590 20"  # runs past the 40 x 40 = 1600 pixels
    table.loc[5, "rle"] = "7 x"
    table.to_csv(shapes / "train.csv", index=False)
    with pytest.raises(PodiumInputError) as info:
        ingest_train(CompetitionLayout(root=shapes, **LAYOUT), tmp_path / "train.parquet",
                     tmp_path / "task.json")
    message = str(info.value)
    assert "train.csv line 5" in message and table.loc[3, "id"] in message
    assert "train.csv line 7" in message and "40x40" in message
    assert not (tmp_path / "train.parquet").exists()


def test_an_unknown_mask_order_names_the_key(shapes, tmp_path):
    with pytest.raises(PodiumInputError, match="competition.mask_order: 'X'"):
        ingest_train(CompetitionLayout(root=shapes, options={"mask_order": "X"}, **LAYOUT),
                     tmp_path / "train.parquet", tmp_path / "task.json")


def test_masks_are_packed_row_for_row_with_the_images(shapes, tmp_path):
    manifest = ingest_train(CompetitionLayout(root=shapes, **LAYOUT),
                            tmp_path / "train.parquet", tmp_path / "task.json")
    settings = PreprocessSettings(size=20, channels=1, clahe=False, exif_orientation=False)
    pack_split(manifest, "train", settings, tmp_path / "train.npy", tmp_path / "index.parquet")
    index = pd.read_parquet(tmp_path / "index.parquet")
    masks = pack_masks(manifest, index, "target", "F", 20, tmp_path / "masks.npy")
    images = np.load(tmp_path / "train.npy")[..., 0].astype(float)
    assert masks.shape == (len(index), 20, 20) and set(np.unique(masks)) <= {0, 1}
    full = manifest.set_index("id")
    for row, image_id in zip(index["row"], index["id"], strict=True):
        rle = full.at[image_id, "target"]
        assert bool(masks[row].any()) == bool(rle)
        if masks[row].sum() > 20:  # the objects are brighter than the background
            assert images[row][masks[row] == 1].mean() > images[row][masks[row] == 0].mean()
        truth = rle_decode(rle, (40, 40))
        assert abs(int(masks[row].sum()) * 4 - int(truth.sum())) <= 0.25 * int(truth.sum()) + 8


def test_stratification_labels_separate_empty_and_area_tertiles():
    rles = pd.Series(["", "1 2", "1 10", "5 100", "", "3 4 10 4", "1 50 60 50"])
    assert rle_area("1 2 10 3") == 5 and rle_area("") == 0 and rle_area("-1") == 0
    labels = stratification_labels(rles)
    assert labels[0] == labels[4] == 0 and (labels[[1, 2, 3, 5, 6]] > 0).all()
    assert labels[1] < labels[3] and set(labels) <= {0, 1, 2, 3}


def _masks_as_images(shapes: Path) -> pd.DataFrame:
    """The demo folder rewritten the Carvana way: one mask PNG per train image (0/255) and a
    train.csv without the RLE column."""
    import cv2

    table = pd.read_csv(shapes / "train.csv", dtype=str, keep_default_na=False)
    (shapes / "train_masks").mkdir()
    for image_id, rle in zip(table["id"], table["rle"], strict=True):
        cv2.imwrite(str(shapes / f"train_masks/{image_id}_mask.png"),
                    rle_decode(rle, (40, 40)) * 255)
    table[["id"]].to_csv(shapes / "train.csv", index=False)
    return table


def test_mask_images_become_the_same_rle_strings(shapes, tmp_path):
    table = _masks_as_images(shapes)
    manifest = ingest_train(
        CompetitionLayout(root=shapes, options={"train_masks": "train_masks/{id}_mask.png"},
                          **LAYOUT),
        tmp_path / "train.parquet", tmp_path / "task.json")
    by_id = manifest.set_index("id")["target"]
    assert all(by_id[i] == rle for i, rle in zip(table["id"], table["rle"], strict=True))


def test_missing_or_misfit_mask_images_are_named(shapes, tmp_path):
    import cv2

    table = _masks_as_images(shapes)
    (shapes / f"train_masks/{table['id'][0]}_mask.png").unlink()
    cv2.imwrite(str(shapes / f"train_masks/{table['id'][1]}_mask.png"),
                np.zeros((20, 40), dtype=np.uint8))
    with pytest.raises(PodiumInputError) as info:
        ingest_train(
            CompetitionLayout(root=shapes, options={"train_masks": "train_masks/{id}_mask.png"},
                          **LAYOUT),
            tmp_path / "train.parquet", tmp_path / "task.json")
    message = str(info.value)
    assert f"{table['id'][0]}_mask.png: mask of train image" in message
    assert "competition.train_masks" in message
    assert f"mask is 20x40 but train image {table['id'][1]!r} is 40x40" in message


def test_external_sources_are_refused_in_a_segmentation_competition(shapes, tmp_path):
    """External sources carry labels, not masks in the competition's format: a segmentation
    config that lists one is refused by key instead of checking masks as class labels."""
    from podium.data.layout import ExternalSource

    external = (ExternalSource(name="old", dir=shapes),)
    with pytest.raises(PodiumInputError, match="competition.external: external sources are "
                                               "not supported in segmentation"):
        ingest_train(CompetitionLayout(root=shapes, external=external, **LAYOUT),
                     tmp_path / "train.parquet", tmp_path / "task.json")
    assert not (tmp_path / "train.parquet").exists()


def test_instances_are_refused_outside_segmentation(shapes, tmp_path):
    with pytest.raises(PodiumInputError, match="competition.instances applies to "
                                               "segmentation competitions"):
        ingest_train(CompetitionLayout(root=shapes, task="binary", target="rle",
                                       metric="auc", options={"instances": True}),
                     tmp_path / "train.parquet", tmp_path / "task.json")
    section = {"task": "binary", "target": "rle", "metric": "auc", "instances": True}
    with pytest.raises(PodiumInputError, match=r"competition\.instances applies to "
                                               "segmentation competitions, not to task "
                                               "'binary'; remove it"):
        CompetitionLayout.from_config(section, shapes)
    section["instances"] = False  # the default, as the shipped config.yaml restates it
    assert CompetitionLayout.from_config(section, shapes).options == {}


def test_an_unknown_task_lists_the_registered_ones(shapes, tmp_path):
    with pytest.raises(PodiumInputError, match="competition.task: 'segmentatio' is not "
                                               "supported.*Did you mean segmentation"):
        ingest_train(CompetitionLayout(root=shapes, task="segmentatio", target="rle",
                                       metric="dice"),
                     tmp_path / "train.parquet", tmp_path / "task.json")
