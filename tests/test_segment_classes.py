"""Several mask classes: CSV rows per image and class (a class column, or the class after the
image id), mask images per class or by pixel value, masks packed as bits, per-class losses,
entries and post-processing, and submissions in the sample's per-class rows."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from podium.data.ingest import CompetitionLayout, ingest_competition, ingest_test, ingest_train
from podium.errors import PodiumInputError
from podium.preprocess.pack import pack_split
from podium.preprocess.transforms import PreprocessSettings
from podium.task import TaskSpec
from podium.tasks.segment.classes import (
    ClassRows,
    class_rles,
    collapse_class_rows,
    join_rles,
    pack_bits,
    presence_strata,
    unpack_bits,
)
from podium.tasks.segment.entries import SegmentTruth, cv_summary, postprocess_entry
from podium.tasks.segment.losses import PerClassLoss, build_segmentation_loss
from podium.tasks.segment.masks import pack_masks, stratification_labels
from podium.tasks.segment.options import SegmentOptions
from podium.tasks.segment.rle import rle_decode, rle_encode
from podium.tasks.segment.shapes import write_shapes_competition
from podium.tasks.segment.submission import (
    encode_test_masks,
    score_segmentation,
    segmentation_submission,
)

CLASSES = ["ellipse", "box"]
LAYOUT = {"task": "segmentation", "target": "rle", "metric": "dice"}
PER_CLASS = {**LAYOUT, "options": {"class_column": "class"}}


@pytest.fixture
def shapes(tmp_path: Path) -> Path:
    root = tmp_path / "shapes"
    write_shapes_competition(root, n_images=40, size=40, classes=CLASSES)
    return root


def _table(root: Path, name: str = "train.csv") -> pd.DataFrame:
    return pd.read_csv(root / name, dtype=str, keep_default_na=False)


# ------------------------------------------------------------------------- the pieces


def test_rows_name_their_class_in_a_column_or_after_the_id():
    table = pd.DataFrame({"Image_Label": ["a.jpg_Fish", "a.jpg_Sugar", "b_c.jpg_Fish"]})
    images, names = ClassRows("Image_Label", class_separator="_").split(table, "train.csv")
    assert list(images) == ["a.jpg", "a.jpg", "b_c.jpg"] and list(names) == ["Fish", "Sugar",
                                                                              "Fish"]
    unique = ClassRows("Image_Label", class_separator="_").image_ids(table, "train.csv")
    assert list(unique) == ["a.jpg", "b_c.jpg"] and list(unique.index) == [0, 2]
    with pytest.raises(PodiumInputError, match="train.csv line 2: id 'nosep'"):
        ClassRows("id", class_separator="_").split(pd.DataFrame({"id": ["nosep"]}), "train.csv")
    with pytest.raises(PodiumInputError, match="no column 'ClassId'"):
        ClassRows("id", class_column="ClassId").split(pd.DataFrame({"id": ["a"]}), "train.csv")
    with pytest.raises(PodiumInputError, match="class_column and competition.class_separator"):
        ClassRows("id", class_column="c", class_separator="_")


def test_class_rows_collapse_to_one_cell_per_image_in_class_order():
    table = pd.DataFrame({"ImageId": ["a", "a", "b", "c", "c"],
                          "ClassId": ["3", "1", "1", "2", "2"],
                          "EncodedPixels": ["5 2", "1 3", "", "7 1", "-1"]})
    rows = ClassRows("ImageId", class_column="ClassId")
    wide, classes, problems = collapse_class_rows(table, rows, "EncodedPixels", None, "t.csv")
    assert classes == ("1", "2", "3") and problems == []
    assert list(wide["ImageId"]) == ["a", "b", "c"] and "ClassId" not in wide
    assert list(wide["EncodedPixels"]) == ["1 3||5 2", "||", "|7 1|"]
    assert class_rles("1 3||5 2", 3) == ["1 3", "", "5 2"] and class_rles("", 3) == [""] * 3
    assert class_rles("-1", 1) == [""] and join_rles(["-1", " 4 2 "]) == "|4 2"
    with pytest.raises(ValueError, match="2 class encodings for 3"):
        class_rles("1 2|3 4", 3)
    bad = pd.concat([table, pd.DataFrame({"ImageId": ["a", "b"], "ClassId": ["1", "9"],
                                          "EncodedPixels": ["2 2", "1 1"]})],
                    ignore_index=True)
    _, _, problems = collapse_class_rows(bad, rows, "EncodedPixels", ["1", "2", "3"], "t.csv")
    assert any("t.csv line 7: image 'a' class '1' already has a mask on line 3" in p
               for p in problems)
    assert any("t.csv line 8: class '9' is not one of the mask classes" in p for p in problems)


def test_bits_pack_and_unpack_overlapping_classes():
    rng = np.random.default_rng(0)
    planes = rng.random((3, 5, 6)) > 0.5
    packed = pack_bits(list(planes))
    assert packed.dtype == np.uint8 and packed.shape == (5, 6)
    assert np.array_equal(unpack_bits(packed, 3), planes.astype(np.uint8))
    batch = np.stack([packed, packed[::-1]])
    assert unpack_bits(batch, 3).shape == (2, 3, 5, 6)
    strata = presence_strata(pd.Series(["1 2||", "|1 1|1 1", "||", "1 1|1 1|1 1"]), 3)
    assert list(strata) == [1, 6, 0, 7]
    assert list(stratification_labels(pd.Series(["1 2|", "|4 4"]), 2)) == [1, 2]


def test_per_class_loss_is_the_mean_of_the_binary_loss_per_channel():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 8, 8)
    targets = (torch.rand(2, 3, 8, 8) > 0.6).float()
    loss = build_segmentation_loss("bce_dice", 3, multilabel=True)
    binary = build_segmentation_loss("bce_dice", 1)
    assert isinstance(loss, PerClassLoss)
    expected = torch.stack([binary(logits[:, k:k + 1], targets[:, k:k + 1]) for k in range(3)])
    assert torch.allclose(loss(logits, targets), expected.mean())
    with pytest.raises(ValueError, match="must be equal"):
        loss(logits, targets[:, 0])
    with pytest.raises(PodiumInputError, match="cross_entropy"):
        build_segmentation_loss("cross_entropy", 3, multilabel=True)


# ------------------------------------------------------------------------- ingest


def test_rows_per_class_ingest_to_one_row_per_image(shapes, tmp_path):
    manifest = ingest_competition(
        CompetitionLayout(root=shapes, classes=tuple(CLASSES), **PER_CLASS),
        tmp_path / "all.parquet", tmp_path / "task.json")
    spec = TaskSpec.load(tmp_path / "task.json")
    assert spec.classes == tuple(CLASSES) and SegmentOptions.of(spec).class_column == "class"
    table = _table(shapes)
    train = manifest[manifest["split"] == "train"].set_index("id")["target"]
    assert len(train) == table["id"].nunique() == len(table) // 2
    for image_id, rows in table.groupby("id"):
        assert class_rles(train[image_id], 2) == list(rows.set_index("class").loc[CLASSES, "rle"])
    sample = _table(shapes, "sample_submission.csv")
    assert set(manifest.loc[manifest["split"] == "test", "id"]) == set(sample["id"])
    # the classes of one image: one cell, bit k the k-th class once packed
    settings = PreprocessSettings(size=40, channels=1, clahe=False, exif_orientation=False)
    train_rows = manifest[manifest["split"] == "train"]
    pack_split(train_rows, "train", settings, tmp_path / "train.npy", tmp_path / "index.parquet")
    index = pd.read_parquet(tmp_path / "index.parquet")
    masks = pack_masks(train_rows, index, "target", "F", 40, tmp_path / "masks.npy", n_classes=2)
    for row, image_id in zip(index["row"], index["id"], strict=True):
        for k, rle in enumerate(class_rles(train[image_id], 2)):
            assert np.array_equal((masks[row] >> k) & 1, rle_decode(rle, (40, 40)))
    assert (masks & 1).any() and (masks & 2).any()


def test_class_after_the_id_ingests_like_a_class_column(shapes, tmp_path):
    for name in ("train.csv", "sample_submission.csv"):
        table = _table(shapes, name)
        table["Image_Label"] = table["id"] + "_" + table["class"]
        table[["Image_Label", "rle"]].to_csv(shapes / name, index=False)
    by_separator = ingest_competition(
        CompetitionLayout(root=shapes, id_column="Image_Label", options={"class_separator": "_"},
                          **LAYOUT),
        tmp_path / "sep.parquet", tmp_path / "task.json")
    assert TaskSpec.load(tmp_path / "task.json").classes == ("box", "ellipse")  # inferred
    assert by_separator["id"].is_unique and by_separator["id"].str.startswith("img").all()


def test_bad_class_rows_are_named_by_line(shapes, tmp_path):
    table = _table(shapes)
    table.loc[3, "class"] = "circle"
    table.loc[len(table)] = [table.loc[0, "id"], table.loc[0, "class"], "1 1"]
    table.to_csv(shapes / "train.csv", index=False)
    with pytest.raises(PodiumInputError) as info:
        ingest_train(CompetitionLayout(root=shapes, classes=tuple(CLASSES), **PER_CLASS),
                     tmp_path / "train.parquet", tmp_path / "task.json")
    message = str(info.value)
    assert "train.csv line 5: class 'circle' is not one of the mask classes" in message
    if table.loc[0, "rle"]:
        assert f"line {len(table) + 1}: image {table.loc[0, 'id']!r}" in message
    assert not (tmp_path / "train.parquet").exists()


def test_class_settings_that_cannot_work_are_refused(shapes, tmp_path):
    out = (tmp_path / "train.parquet", tmp_path / "task.json")
    with pytest.raises(PodiumInputError, match="lists 2 mask classes but train.csv has one mask"):
        ingest_train(CompetitionLayout(root=shapes, classes=tuple(CLASSES), **LAYOUT), *out)
    with pytest.raises(PodiumInputError, match="1 to 8 are supported|1 to 8 classes"):
        ingest_train(CompetitionLayout(root=shapes, classes=tuple("abcdefghi"), **PER_CLASS),
                     *out)
    with pytest.raises(PodiumInputError, match=r"\{class\}.*list the classes"):
        ingest_train(CompetitionLayout(root=shapes, options={"train_masks": "m/{id}_{class}.png"},
                                       **LAYOUT),
                     *out)


def _mask_images(shapes: Path, per_class: bool) -> pd.DataFrame:
    """The demo's masks as PNGs: one per image and class (0/255), or one per image with pixel
    value k + 1 for the k-th class (where boxes overlap ellipses, the box wins)."""
    table = _table(shapes)
    (shapes / "masks").mkdir()
    for image_id, rows in table.groupby("id"):
        planes = [rle_decode(r, (40, 40)) for r in rows.set_index("class").loc[CLASSES, "rle"]]
        if per_class:
            for name, plane in zip(CLASSES, planes, strict=True):
                cv2.imwrite(str(shapes / f"masks/{image_id}_{name}.png"), plane * 255)
        else:
            value = np.where(planes[1] > 0, 2, planes[0]).astype(np.uint8)
            cv2.imwrite(str(shapes / f"masks/{image_id}.png"), value)
    table[["id"]].drop_duplicates().to_csv(shapes / "train.csv", index=False)
    return table


@pytest.mark.parametrize("per_class", [True, False])
def test_mask_images_per_class_or_by_value(shapes, tmp_path, per_class):
    table = _mask_images(shapes, per_class)
    pattern = "masks/{id}_{class}.png" if per_class else "masks/{id}.png"
    manifest = ingest_train(
        CompetitionLayout(root=shapes, options={"train_masks": pattern}, classes=tuple(CLASSES),
                          **LAYOUT),
        tmp_path / "train.parquet", tmp_path / "task.json")
    cells = manifest.set_index("id")["target"]
    for image_id, rows in table.groupby("id"):
        truth = [rle_decode(r, (40, 40)) for r in rows.set_index("class").loc[CLASSES, "rle"]]
        if not per_class:
            truth[0] = truth[0] * (1 - truth[1])  # the value map keeps one class per pixel
        got = [rle_decode(r, (40, 40)) for r in class_rles(cells[image_id], 2)]
        assert all(np.array_equal(g, t) for g, t in zip(got, truth, strict=True))


def test_a_mask_value_beyond_the_classes_is_named(shapes, tmp_path):
    table = _mask_images(shapes, per_class=False)
    first = table["id"].iloc[0]
    cv2.imwrite(str(shapes / f"masks/{first}.png"), np.full((40, 40), 3, dtype=np.uint8))
    with pytest.raises(PodiumInputError, match=rf"{first}.png: mask holds pixel value 3 but "
                                               "there are 2 classes"):
        ingest_train(CompetitionLayout(root=shapes, options={"train_masks": "masks/{id}.png"},
                                       classes=tuple(CLASSES), **LAYOUT),
                     tmp_path / "train.parquet", tmp_path / "task.json")


def test_test_side_reads_image_ids_from_class_rows(shapes, tmp_path):
    manifest = ingest_test(CompetitionLayout(root=shapes, **PER_CLASS), tmp_path / "t.parquet")
    sample = _table(shapes, "sample_submission.csv")
    assert list(manifest["id"]) == list(dict.fromkeys(sample["id"]))


# ------------------------------------------------------------------------- entries, submission


def _truth(masks: np.ndarray, folds: np.ndarray) -> SegmentTruth:
    ids = np.array([f"i{i}" for i in range(len(masks))])
    return SegmentTruth(ids, np.arange(len(masks)), folds, masks)


def test_entries_score_image_class_pairs_and_post_process_each_class():
    rng = np.random.default_rng(0)
    n = 40
    planes = np.zeros((n, 2, 16, 16), dtype=np.uint8)
    planes[: n // 2, 0, 2:8, 2:8] = 1
    planes[::3, 1, 9:14, 9:14] = 1
    truth = _truth(np.stack([pack_bits(list(p)) for p in planes]), np.arange(n) % 2)
    # class 0 well calibrated; class 1 faint (0.35 inside) with speckles on empty images
    probs = planes.astype(np.float32) * np.array([0.9, 0.35], dtype=np.float32)[:, None, None]
    probs[:, 1] += (rng.random((n, 16, 16)) > 0.97) * 0.6 * (planes[:, 1] == 0)
    probs = np.clip(probs, 0, 1)
    summary = cv_summary("m", "model", truth, probs)
    assert summary["class_scores"][0] == pytest.approx(1.0)
    assert summary["class_scores"][1] < 0.8
    assert summary["oof_score"] == pytest.approx(np.mean(summary["class_scores"]))
    oof_masks, test_masks, details = postprocess_entry(truth, probs, probs[:4])
    assert oof_masks.shape == probs.shape and test_masks.shape == (4, 2, 16, 16)
    assert [c["class"] for c in details["classes"]] == [0, 1]
    fitted = details["classes"][1]["fitted"]
    assert fitted["threshold"] < 0.35 or fitted["min_area"] > 3
    assert details["dice_after"] > details["dice_before"] + 0.1


def test_submission_fills_the_sample_rows_of_each_class(shapes, tmp_path):
    ingest_competition(CompetitionLayout(root=shapes, **PER_CLASS), tmp_path / "all.parquet",
                       tmp_path / "task.json")
    spec = TaskSpec.load(tmp_path / "task.json")
    manifest = pd.read_parquet(tmp_path / "all.parquet")
    solution = _table(shapes, "solution.csv")
    test_ids = pd.Series(list(dict.fromkeys(solution["id"])))
    truth = solution.set_index(["id", "class"])["rle"]
    assert spec.classes == ("box", "ellipse")  # inferred, in natural order
    maps = np.stack([[rle_decode(truth[i, c], (40, 40)) for c in spec.classes]
                     for i in test_ids])
    rle_of = encode_test_masks(maps.astype(np.uint8), test_ids, manifest, "F")
    sample = _table(shapes, "sample_submission.csv")
    submission = segmentation_submission(sample, spec, rle_of, "sample.csv")
    assert list(submission.columns) == list(sample.columns)
    assert list(submission[["id", "class"]].itertuples(index=False)) == \
        list(sample[["id", "class"]].itertuples(index=False))
    assert list(submission["rle"]) == list(solution["rle"])
    submission.to_csv(tmp_path / "submission.csv", index=False)
    score = score_segmentation(tmp_path / "submission.csv", shapes / "solution.csv", manifest,
                               spec)
    assert score == {"metric": "dice", "score": 1.0, "n": len(solution)}
    # one wrong class plane costs exactly that pair's Dice
    first = next(i for i, rle in enumerate(submission["rle"]) if rle)
    submission.loc[first, "rle"] = rle_encode(np.zeros((40, 40), np.uint8))
    submission.to_csv(tmp_path / "submission.csv", index=False)
    worse = score_segmentation(tmp_path / "submission.csv", shapes / "solution.csv", manifest,
                               spec)
    assert worse["score"] == pytest.approx(1.0 - 1.0 / len(solution))
    sample.loc[1, "class"] = "circle"
    with pytest.raises(PodiumInputError, match="sample.csv line 3: class 'circle'"):
        segmentation_submission(sample, spec, rle_of, "sample.csv")
    one_row_each = sample.drop_duplicates("id").drop(columns="class")
    plain = TaskSpec(**{**spec.__dict__, "options": {**spec.options, "class_column": None}})
    with pytest.raises(PodiumInputError, match="one row per image, but there are 2 mask"):
        segmentation_submission(one_row_each, plain, rle_of, "sample.csv")
