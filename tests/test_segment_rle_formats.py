"""RLE formats chosen by name (competition.rle_format) through the pipeline: config schema and
ingest refuse unknown names and strings in another format (by line), packing, instances, the
submission and held-out scoring use the chosen format, and submission.mask_size writes and
scores masks at another size than the images'. The formats themselves are checked against
independent references in tests/references/test_rle_formats.py."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
import yaml

from podium.data.ingest import CompetitionLayout, ingest_competition, ingest_train
from podium.errors import PodiumInputError
from podium.preprocess.pack import pack_split
from podium.preprocess.transforms import PreprocessSettings
from podium.schema import task_options
from podium.task import TARGET_COLUMN, TaskSpec
from podium.tasks.segment.instances import instance_labels, instance_rows
from podium.tasks.segment.masks import MASK_COVER, pack_masks, to_size
from podium.tasks.segment.options import SegmentOptions
from podium.tasks.segment.rle import RLE_FORMATS, get_format, rle_decode, rle_encode
from podium.tasks.segment.shapes import write_shapes_competition
from podium.tasks.segment.submission import (
    check_mask_submission,
    encode_test_masks,
    instance_submission,
    score_instances,
    score_segmentation,
    segmentation_submission,
)

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
LAYOUT = {"task": "segmentation", "target": "rle", "metric": "dice"}


def _table(root: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(root / name, dtype=str, keep_default_na=False)


@pytest.fixture
def siim_shapes(tmp_path: Path) -> Path:
    root = tmp_path / "siim"
    write_shapes_competition(root, n_images=40, size=40, rle_format="siim")
    return root


@pytest.fixture
def kaggle_shapes(tmp_path: Path) -> Path:
    root = tmp_path / "kaggle"
    write_shapes_competition(root, n_images=40, size=40)
    return root


# --- config ---------------------------------------------------------------------------------


def _config(**competition) -> dict:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["competition"].update(competition)
    return config


def test_schema_enum_is_the_registry():
    formats = SCHEMA["properties"]["competition"]["properties"]["rle_format"]
    assert formats["enum"] == list(RLE_FORMATS) and formats["default"] == "kaggle"
    unset = TaskSpec("segmentation", "rle", ("mask",), "dice", "id")
    assert formats["default"] == SegmentOptions.of(unset).rle_format
    assert SegmentOptions.of(CompetitionLayout(root=Path("."))).rle_format == "kaggle"


def test_schema_refuses_an_unknown_format_and_a_bad_mask_size():
    jsonschema.validate(_config(rle_format="siim"), SCHEMA)
    with pytest.raises(jsonschema.ValidationError, match="'siim2' is not one of"):
        jsonschema.validate(_config(rle_format="siim2"), SCHEMA)
    for good in (None, [350, 525]):
        jsonschema.validate({**_config(), "submission": {"mask_size": good}}, SCHEMA)
    for bad in ([350], [350, 0], [350, 525, 3], "350x525"):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**_config(), "submission": {"mask_size": bad}}, SCHEMA)


def test_unknown_format_and_wrong_order_are_named():
    with pytest.raises(PodiumInputError, match="competition.rle_format: unknown RLE format "
                                               "'sim'.*Did you mean siim"):
        get_format("sim")
    with pytest.raises(PodiumInputError, match="'siim' numbers pixels in order F only"):
        get_format("siim", "C")
    with pytest.raises(PodiumInputError, match="unknown RLE format"):
        rle_encode(np.ones((2, 2)), "F", "Kaggle")


# --- ingest ---------------------------------------------------------------------------------


def test_an_unknown_format_stops_ingest_with_a_suggestion(kaggle_shapes, tmp_path):
    with pytest.raises(PodiumInputError, match="competition.rle_format: unknown RLE format "
                                               "'siim_acr'.*Did you mean siim"):
        ingest_train(CompetitionLayout(root=kaggle_shapes, options={"rle_format": "siim_acr"},
                                       **LAYOUT),
                     tmp_path / "train.parquet", tmp_path / "task.json")
    with pytest.raises(PodiumInputError, match="numbers pixels in order F only"):
        ingest_train(CompetitionLayout(root=kaggle_shapes, options={"rle_format": "siim",
                                                                    "mask_order": "C"},
                                       **LAYOUT), tmp_path / "train.parquet",
                     tmp_path / "task.json")
    assert not (tmp_path / "train.parquet").exists()


def test_siim_masks_ingest_and_pack_like_the_same_kaggle_masks(siim_shapes, kaggle_shapes,
                                                               tmp_path):
    """The same seed writes the same masks in both formats: ingest keeps each file's strings,
    the task spec carries the format, and the packed masks are identical."""
    assert (_table(siim_shapes, "train.csv")["rle"]
            != _table(kaggle_shapes, "train.csv")["rle"]).any()
    packed = {}
    for name, root in (("siim", siim_shapes), ("kaggle", kaggle_shapes)):
        out = tmp_path / f"out_{name}"
        out.mkdir()
        manifest = ingest_train(
            CompetitionLayout(root=root, options={"rle_format": name}, **LAYOUT),
            out / "train.parquet", out / "task.json")
        spec = TaskSpec.load(out / "task.json")
        options = SegmentOptions.of(spec)
        assert options.rle_format == name and options.mask_order == "F"
        by_id = manifest.set_index("id")[TARGET_COLUMN]
        assert all(by_id[i] == r for i, r in _table(root, "train.csv")[["id", "rle"]].values)
        settings = PreprocessSettings(size=20, channels=1, clahe=False, exif_orientation=False)
        pack_split(manifest, "train", settings, out / "train.npy", out / "index.parquet")
        packed[name] = np.asarray(pack_masks(manifest, pd.read_parquet(out / "index.parquet"),
                                             TARGET_COLUMN, "F", 20, out / "masks.npy",
                                             rle_format=options.rle_format))
    assert packed["siim"].any() and np.array_equal(packed["siim"], packed["kaggle"])


def test_an_old_task_spec_without_a_format_reads_as_kaggle(tmp_path):
    spec = TaskSpec("segmentation", "rle", ("mask",), "dice", "id",
                    options=task_options("segmentation", {"mask_order": "F"}))
    spec.save(tmp_path / "task.json")
    data = json.loads((tmp_path / "task.json").read_text())
    del data["options"]["rle_format"]
    (tmp_path / "task.json").write_text(json.dumps(data))
    assert SegmentOptions.of(TaskSpec.load(tmp_path / "task.json")).rle_format == "kaggle"


def test_siim_strings_given_as_kaggle_are_refused_by_line(siim_shapes, tmp_path):
    table = _table(siim_shapes, "train.csv")
    with pytest.raises(PodiumInputError) as info:
        ingest_train(CompetitionLayout(root=siim_shapes, **LAYOUT), tmp_path / "train.parquet",
                     tmp_path / "task.json")
    message = str(info.value)
    bad = [i for i, rle in enumerate(table["rle"]) if rle and _fails(rle, "kaggle")]
    assert len(bad) > len(table) // 3  # most objects span several columns
    first = bad[0]
    line = f"train.csv line {first + 2}: id {table['id'][first]!r}: rle is not a kaggle encoding"
    assert line in message
    assert "starts before the previous run" in message
    assert "it does decode as rle_format 'siim' with mask_order 'F'" in message
    assert not (tmp_path / "train.parquet").exists()


def test_kaggle_strings_given_as_siim_are_refused_where_they_run_past_the_image(kaggle_shapes,
                                                                                tmp_path):
    table = _table(kaggle_shapes, "train.csv")
    bad = [i for i, rle in enumerate(table["rle"]) if rle and _fails(rle, "siim")]
    assert bad  # objects away from the image's left edge add up past its 1600 pixels
    with pytest.raises(PodiumInputError) as info:
        ingest_train(CompetitionLayout(root=kaggle_shapes, options={"rle_format": "siim"},
                                       **LAYOUT),
                     tmp_path / "train.parquet", tmp_path / "task.json")
    message = str(info.value)
    assert f"train.csv line {bad[0] + 2}: id {table['id'][bad[0]]!r}: rle is not a siim" in message
    assert "past the last pixel 1600 of a 40x40 mask" in message
    assert "it does decode as rle_format 'kaggle'" in message


def _fails(rle: str, fmt: str) -> bool:
    try:
        rle_decode(rle, (40, 40), "F", fmt)
    except ValueError:
        return True
    return False


def test_class_rows_name_the_class_of_a_wrong_format_string(tmp_path):
    root = tmp_path / "classes"
    write_shapes_competition(root, n_images=40, size=40, classes=["ellipse", "box"],
                             rle_format="siim")
    with pytest.raises(PodiumInputError, match=r"line \d+: id '\w+' class '(ellipse|box)': "
                                               "rle is not a kaggle encoding"):
        ingest_train(CompetitionLayout(root=root, options={"class_column": "class"}, **LAYOUT),
                     tmp_path / "train.parquet", tmp_path / "task.json")


# --- instances ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", list(RLE_FORMATS))
def test_instance_rows_are_written_in_the_format(fmt):
    labels = np.zeros((12, 9), dtype=np.int32)
    labels[1:4, 1:3] = 1
    labels[5:11, 4:8] = 2
    labels[0, 8] = labels[11, 8] = 3  # touches the last pixel
    rows = instance_rows(labels, "img", "F", fmt)
    assert [r for _, r in rows] == [rle_encode(labels == v, "F", fmt) for v in (1, 2, 3)]
    np.testing.assert_array_equal(instance_labels([r for _, r in rows], (12, 9), "F", fmt),
                                  labels)


# --- submission and mask_size ---------------------------------------------------------------


def test_to_size_averages_areas_when_shrinking():
    mask = np.zeros((4, 6), dtype=np.uint8)
    mask[0:2, 0:2] = 1  # a whole 2x2 block
    mask[2, 2:4] = 1  # half a block: kept (MASK_COVER)
    mask[3, 5] = 1  # a quarter: dropped
    assert MASK_COVER == 0.5
    np.testing.assert_array_equal(to_size(mask, 2, 3), [[1, 0, 0], [0, 1, 0]])
    probs = np.kron(np.array([[0.2, 0.8]], np.float32), np.ones((2, 2), np.float32))
    probs[0, 0] = 0.6
    np.testing.assert_allclose(to_size(probs, 1, 2), [[0.3, 0.8]], atol=1e-6)
    np.testing.assert_array_equal(to_size(np.array([[1, 0]], np.uint8), 2, 4),
                                  [[1, 1, 0, 0], [1, 1, 0, 0]])
    assert to_size(mask, 4, 6) is mask


def _ingested(root: Path, tmp_path: Path, fmt: str) -> tuple[TaskSpec, pd.DataFrame]:
    ingest_competition(CompetitionLayout(root=root, options={"rle_format": fmt}, **LAYOUT),
                       tmp_path / "all.parquet", tmp_path / "task.json")
    return TaskSpec.load(tmp_path / "task.json"), pd.read_parquet(tmp_path / "all.parquet")


def _solution_maps(root: Path, fmt: str) -> tuple[pd.Series, np.ndarray]:
    """The held-out masks as 0/1 ``N x 1 x 40 x 40`` maps, a perfect entry's test maps."""
    solution = _table(root, "solution.csv")
    maps = np.stack([[rle_decode(r, (40, 40), "F", fmt)] for r in solution["rle"]])
    return solution["id"], maps


@pytest.mark.parametrize("fmt", list(RLE_FORMATS))
def test_mask_size_submission_is_written_and_scored_at_that_size(fmt, tmp_path):
    root = tmp_path / "shapes"
    write_shapes_competition(root, n_images=40, size=40, rle_format=fmt)
    spec, manifest = _ingested(root, tmp_path, fmt)
    ids, maps = _solution_maps(root, fmt)
    rle_of = encode_test_masks(maps.astype(np.uint8), ids, manifest, "F", fmt,
                               mask_size=[20, 30])
    submission = segmentation_submission(_table(root, "sample_submission.csv"), spec, rle_of)
    for image_id, rle, planes in zip(ids, submission["rle"], maps, strict=True):
        np.testing.assert_array_equal(rle_decode(rle, (20, 30), "F", fmt),
                                      to_size(planes[0], 20, 30), err_msg=image_id)
    check_mask_submission(submission, spec, manifest, [20, 30], "submission.csv")
    submission.to_csv(tmp_path / "submission.csv", index=False)
    score = score_segmentation(tmp_path / "submission.csv", root / "solution.csv", manifest,
                               spec, mask_size=[20, 30])
    assert score == {"metric": "dice", "score": 1.0, "n": len(ids)}
    # at the images' own size the strings are the solution's, and do not fit 20 x 30
    full = segmentation_submission(_table(root, "sample_submission.csv"), spec,
                                   encode_test_masks(maps.astype(np.uint8), ids, manifest, "F",
                                                     fmt))
    assert list(full["rle"]) == list(_table(root, "solution.csv")["rle"])
    with pytest.raises(PodiumInputError, match="mask strings do not decode"):
        check_mask_submission(full, spec, manifest, [20, 30], "submission.csv")
    # probabilities are averaged, then thresholded: certain maps give the masks' strings
    assert encode_test_masks(maps.astype(np.float32), ids, manifest, "F", fmt,
                             mask_size=[20, 30]) == rle_of


def test_the_submission_check_names_line_column_and_id(kaggle_shapes, tmp_path):
    spec, manifest = _ingested(kaggle_shapes, tmp_path, "kaggle")
    submission = _table(kaggle_shapes, "solution.csv")
    check_mask_submission(submission, spec, manifest, path="submission.csv")
    nonempty = [i for i, r in enumerate(submission["rle"]) if r]
    siim = rle_encode(rle_decode(submission["rle"][nonempty[0]], (40, 40)), "F", "siim")
    submission.loc[nonempty[0], "rle"] = siim
    submission.loc[nonempty[1], "rle"] = "1 1601"
    submission.loc[nonempty[2], "rle"] = "3 x"
    with pytest.raises(PodiumInputError) as info:
        check_mask_submission(submission, spec, manifest, path="submission.csv")
    message = str(info.value)
    assert "submission.csv: 3 mask strings do not decode; nothing was written" in message
    for row, why in zip(nonempty[:3], ("starts before the previous run", "past the last pixel "
                                       "1600", "token 2 ('x') is not an integer"), strict=True):
        assert (f"submission.csv line {row + 2}, column 'rle', id {submission['id'][row]!r}: "
                "not a kaggle encoding (mask_order F) of a 40x40 mask") in message
        assert why in message
    siim_spec = TaskSpec(**{**spec.__dict__, "options": {**spec.options, "rle_format": "siim"}})
    with pytest.raises(PodiumInputError, match="not a siim encoding"):
        check_mask_submission(_table(kaggle_shapes, "solution.csv"), siim_spec, manifest)


@pytest.mark.parametrize("fmt", list(RLE_FORMATS))
def test_instances_at_a_mask_size(fmt, tmp_path):
    """Instance rows at ``mask_size`` (labels resized by nearest neighbour) in the chosen
    format, scored against a solution at the images' size resized the same way."""
    yy, xx = np.ogrid[:24, :24]
    discs = np.zeros((24, 24), dtype=np.int32)
    discs[(yy - 6) ** 2 + (xx - 6) ** 2 <= 16] = 1
    discs[(yy - 16) ** 2 + (xx - 17) ** 2 <= 20] = 2
    probs = (discs > 0).astype(np.float32)[None, None]
    sizes = pd.DataFrame({"id": ["a"], "height": [48], "width": [72]})
    spec = TaskSpec("segmentation", "EncodedPixels", ("mask",), "instance_map", "ImageId",
                    options={"instances": True, "rle_format": fmt})
    sample = pd.DataFrame({"ImageId": ["a"], "EncodedPixels": ""})
    submission = instance_submission(probs, pd.Series(["a"]), sizes, sample, spec, [12, 18])
    assert len(submission) == 2
    check_mask_submission(submission, spec, sizes, [12, 18])
    with pytest.raises(PodiumInputError, match="line 2, column 'EncodedPixels', ImageId 'a'"):
        check_mask_submission(submission.assign(EncodedPixels="0 217"), spec, sizes, [12, 18])
    big = np.kron(discs, np.ones((2, 3), np.int32))  # the truth at the image's 48 x 72
    solution = pd.DataFrame({"ImageId": "a", "EncodedPixels": [
        rle_encode(big == v, "F", fmt) for v in (1, 2)]})
    solution.to_csv(tmp_path / "solution.csv", index=False)
    submission.to_csv(tmp_path / "submission.csv", index=False)
    score = score_instances(tmp_path / "submission.csv", tmp_path / "solution.csv", sizes, spec,
                            mask_size=[12, 18])
    assert score == {"metric": "instance_map", "score": 1.0, "n": 1}
