"""Instance competitions (DSB 2018) through podium's stages: train.csv rows per object collapse
to one manifest cell, instance labels are packed beside the images, every entry is scored by
the instance mAP, and the submission has one row per predicted instance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from podium.data.ingest import CompetitionLayout, ingest_competition, ingest_train
from podium.errors import PodiumInputError
from podium.preprocess.pack import pack_split
from podium.preprocess.transforms import PreprocessSettings
from podium.task import TaskSpec
from podium.tasks.segment.classes import collapse_instance_rows, pack_bits
from podium.tasks.segment.entries import SegmentTruth, cv_summary, instance_entry
from podium.tasks.segment.instances import instance_labels, labels_of, pack_instance_labels
from podium.tasks.segment.masks import rle_area
from podium.tasks.segment.options import SegmentOptions
from podium.tasks.segment.rle import rle_decode, rle_encode
from podium.tasks.segment.shapes import write_shapes_competition
from podium.tasks.segment.submission import instance_submission, score_instances

LAYOUT = {"task": "segmentation", "target": "rle", "metric": "instance_map",
          "options": {"instances": True}}


@pytest.fixture
def shapes(tmp_path: Path) -> Path:
    root = tmp_path / "shapes"
    write_shapes_competition(root, n_images=40, size=40, instances=True)
    return root


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def test_object_rows_collapse_and_decode_to_their_union():
    a = np.zeros((6, 6), np.uint8)
    a[1:3, 1:3] = 1
    b = np.zeros((6, 6), np.uint8)
    b[3:5, 2:6] = 1
    table = pd.DataFrame({"ImageId": ["x", "y", "x", "z"],
                          "EncodedPixels": [rle_encode(a), "", rle_encode(b), "-1"]})
    wide = collapse_instance_rows(table, "ImageId", "EncodedPixels")
    assert list(wide["ImageId"]) == ["x", "y", "z"]
    assert list(wide["EncodedPixels"]) == [f"{rle_encode(a)};{rle_encode(b)}", "", ""]
    assert np.array_equal(rle_decode(wide["EncodedPixels"][0], (6, 6)), a | b)
    assert rle_area(wide["EncodedPixels"][0]) == 12
    labels = instance_labels(wide["EncodedPixels"][0].split(";"), (6, 6), "F")
    assert set(np.unique(labels)) == {0, 1, 2}


def test_instance_rows_ingest_and_pack_as_labels(shapes, tmp_path):
    manifest = ingest_competition(CompetitionLayout(root=shapes, **LAYOUT),
                                  tmp_path / "all.parquet", tmp_path / "task.json")
    spec = TaskSpec.load(tmp_path / "task.json")
    assert SegmentOptions.of(spec).instances and spec.metric == "instance_map"
    assert spec.classes == ("mask",)
    rows = _read(shapes / "train.csv")
    train = manifest[manifest["split"] == "train"]
    assert train["id"].is_unique and set(train["id"]) == set(rows["id"])
    settings = PreprocessSettings(size=40, channels=1, clahe=False, exif_orientation=False)
    pack_split(train, "train", settings, tmp_path / "train.npy", tmp_path / "index.parquet")
    index = pd.read_parquet(tmp_path / "index.parquet")
    packed = pack_instance_labels(train, index, "target", "F", 40, tmp_path / "instances.npy")
    assert packed.dtype == np.int32
    for row, image_id in zip(index["row"], index["id"], strict=True):
        objects = [r for r in rows.loc[rows["id"] == image_id, "rle"] if r]
        assert len(np.unique(packed[row])) - 1 == len(objects)
        for k, rle in enumerate(objects, start=1):
            assert np.array_equal(packed[row] == k, rle_decode(rle, (40, 40)) == 1)


def test_instance_settings_that_cannot_work_are_refused(shapes, tmp_path):
    out = (tmp_path / "t.parquet", tmp_path / "task.json")
    with pytest.raises(PodiumInputError, match="competition.metric and competition.instances"):
        ingest_train(CompetitionLayout(root=shapes, **{**LAYOUT, "metric": "dice"}), *out)
    with pytest.raises(PodiumInputError, match="competition.metric and competition.instances"):
        ingest_train(CompetitionLayout(root=shapes, **{**LAYOUT, "options": {"instances": False}}),
                     *out)
    with pytest.raises(PodiumInputError, match="instances needs one mask class"):
        ingest_train(CompetitionLayout(root=shapes, **{**LAYOUT, "options": {
            "instances": True, "class_column": "class"}}), *out)


def _blobs(n: int, size: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Two touching discs per image: the true labels and a probability map of their union."""
    yy, xx = np.mgrid[:size, :size]
    labels = np.zeros((n, size, size), np.int32)
    for i in range(n):
        row = 8 + i % 5
        labels[i][(yy - row) ** 2 + (xx - 7) ** 2 <= 25] = 1
        labels[i][((yy - row) ** 2 + (xx - 16) ** 2 <= 25) & (labels[i] == 0)] = 2
    return labels, (labels > 0).astype(np.float32) * 0.9


def test_entries_are_scored_by_instance_map_and_split_by_a_fitted_watershed():
    labels, probs = _blobs(12)
    truth = SegmentTruth(np.array([f"i{i}" for i in range(12)]), np.arange(12),
                         np.arange(12) % 2,
                         np.stack([pack_bits([m]) for m in labels > 0]), labels)
    summary = cv_summary("m", "model", truth, probs[:, None])
    assert summary["metric"] == "instance_map" and summary["oof_dice"] == pytest.approx(1.0)
    # the default watershed's distance peaks split the two discs
    assert summary["cv_mean"] > 0.9
    merged = cv_summary("m", "model", truth, (labels > 0).astype(np.int32)[:, None])
    assert merged["cv_mean"] < 0.5  # one label for both discs: no IoU above 0.5
    oof, test, details = instance_entry(truth, probs[:, None], probs[:3, None])
    assert oof.dtype == np.int32 and oof.shape == (12, 1, 24, 24) and test.shape == (3, 1, 24, 24)
    assert details["map_after"] >= details["map_before"] - 1e-9
    assert [f["fold"] for f in details["per_fold"]] == [0, 1]
    assert np.array_equal(labels_of(oof), oof[:, 0])


def test_instance_submission_has_a_row_per_object_and_scores_against_the_solution(tmp_path):
    labels, probs = _blobs(3)
    labels[2] = 0  # an image without objects
    probs[2] = 0.0
    ids = pd.Series(["a", "b", "c"])
    sizes = pd.DataFrame({"id": ids, "height": 48, "width": 48})  # twice the packed size
    spec = TaskSpec("segmentation", "EncodedPixels", ("mask",), "instance_map", "ImageId",
                    options={"instances": True})
    sample = pd.DataFrame({"ImageId": ["c", "a", "b"], "EncodedPixels": "1 1"})
    submission = instance_submission(probs[:, None], ids, sizes, sample, spec)
    assert list(submission.columns) == ["ImageId", "EncodedPixels"]
    assert list(submission["ImageId"]) == ["c", "a", "a", "b", "b"]
    assert submission["EncodedPixels"].iloc[0] == ""
    decoded = rle_decode(submission["EncodedPixels"].iloc[1], (48, 48))
    # a disc at twice the size (the watershed may give a boundary pixel to its neighbour)
    assert decoded.sum() % 4 == 0 and abs(int(decoded.sum()) - 4 * (labels[0] == 1).sum()) <= 8
    submission.to_csv(tmp_path / "submission.csv", index=False)
    big = np.kron(labels, np.ones((2, 2), np.int32))
    solution = pd.DataFrame(
        [(i, rle_encode((big[k] == v).astype(np.uint8))) for k, i in enumerate(ids)
         for v in (1, 2) if (big[k] == v).any()] + [("c", "")],
        columns=["ImageId", "EncodedPixels"])
    solution.to_csv(tmp_path / "solution.csv", index=False)
    score = score_instances(tmp_path / "submission.csv", tmp_path / "solution.csv", sizes, spec)
    assert score == {"metric": "instance_map", "score": 1.0, "n": 3}
    submission.iloc[[0, 1, 3]].to_csv(tmp_path / "submission.csv", index=False)  # lose one each
    worse = score_instances(tmp_path / "submission.csv", tmp_path / "solution.csv", sizes, spec)
    assert worse["score"] == pytest.approx((1.0 + 0.5 + 0.5) / 3)
