"""ingest_competition: every bad input is refused with a message naming what is at fault."""

from __future__ import annotations

import hashlib
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from podium.data.digits import write_digits_competition
from podium.data.ingest import (
    CompetitionLayout,
    ingest_competition,
    ingest_test,
    ingest_train,
    merge_manifests,
)
from podium.errors import PodiumInputError
from podium.task import TaskSpec

MANIFEST_COLUMNS = ["id", "split", "path", "target", "height", "width", "channels", "md5",
                    "pixel_md5", "source", "train_only"]


def read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False)


def edit_csv(path: Path, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> pd.DataFrame:
    frame = edit(read_csv(path))
    write_csv(frame, path)
    return frame


def outputs(tmp_path: Path) -> tuple[Path, Path]:
    return tmp_path / "out" / "manifest.parquet", tmp_path / "out" / "task.json"


def ingest(root: Path, tmp_path: Path, threads: int = 1, **layout: object) -> pd.DataFrame:
    manifest_path, task_path = outputs(tmp_path)
    return ingest_competition(
        CompetitionLayout(root=root, **layout), manifest_path, task_path, threads=threads
    )


def ingest_fails(root: Path, tmp_path: Path, **layout: object) -> str:
    """Run ingest, expect PodiumInputError, check nothing was written; return the message."""
    manifest_path, task_path = outputs(tmp_path)
    with pytest.raises(PodiumInputError) as info:
        ingest(root, tmp_path, **layout)
    assert not manifest_path.exists()
    assert not task_path.exists()
    return str(info.value)


def first_train_id(root: Path) -> str:
    return read_csv(root / "train.csv")["id"].iloc[0]


def first_test_id(root: Path) -> str:
    return read_csv(root / "sample_submission.csv")["id"].iloc[0]


# --- the happy path ---------------------------------------------------------------------------


@pytest.mark.parametrize("threads", [1, 2])
def test_manifest_of_valid_digits_folder(comp: Path, tmp_path: Path, threads: int) -> None:
    manifest = ingest(comp, tmp_path, threads=threads)
    manifest_path, task_path = outputs(tmp_path)

    assert list(manifest.columns) == MANIFEST_COLUMNS
    on_disk = pd.read_parquet(manifest_path)
    assert list(on_disk.columns) == MANIFEST_COLUMNS
    assert len(on_disk) == len(manifest) == 40

    train = read_csv(comp / "train.csv")
    sample = read_csv(comp / "sample_submission.csv")
    assert on_disk["id"].tolist() == train["id"].tolist() + sample["id"].tolist()
    assert on_disk["split"].tolist() == ["train"] * len(train) + ["test"] * len(sample)
    assert on_disk.loc[on_disk.split == "train", "target"].tolist() == train["label"].tolist()
    assert on_disk.loc[on_disk.split == "test", "target"].isna().all()

    assert (on_disk["height"] == 8).all()
    assert (on_disk["width"] == 8).all()
    assert (on_disk["channels"] == 1).all()
    for row in on_disk.itertuples():
        path = Path(row.path)
        assert path.is_absolute()
        folder = "train" if row.split == "train" else "test"
        assert path == (comp / folder / f"{row.id}.png").resolve()
        assert row.md5 == hashlib.md5(path.read_bytes()).hexdigest()

    spec = TaskSpec.load(task_path)
    assert spec.classes == tuple(str(d) for d in range(10))
    assert spec.task == "multiclass"
    assert spec.metric == "accuracy"
    assert spec.target == "label"
    assert spec.id_column == "id"


def test_numeric_classes_sort_as_numbers(comp: Path, tmp_path: Path) -> None:
    # Digits 0..9 become labels 1..10: alphabetically '10' would come before '2'.
    edit_csv(comp / "train.csv",
             lambda f: f.assign(label=(f["label"].astype(int) + 1).astype(str)))
    ingest(comp, tmp_path)
    spec = TaskSpec.load(outputs(tmp_path)[1])
    assert spec.classes == tuple(str(d) for d in range(1, 11))
    assert spec.classes.index("2") < spec.classes.index("10")


def test_configured_classes_keep_their_order(comp: Path, tmp_path: Path) -> None:
    classes = tuple(str(d) for d in reversed(range(10)))
    ingest(comp, tmp_path, classes=classes)
    assert TaskSpec.load(outputs(tmp_path)[1]).classes == classes


def test_failed_validation_leaves_existing_manifest_untouched(comp: Path, tmp_path: Path) -> None:
    ingest(comp, tmp_path)
    manifest_path, task_path = outputs(tmp_path)
    before = manifest_path.read_bytes(), task_path.read_bytes()
    (comp / "train" / f"{first_train_id(comp)}.png").unlink()
    with pytest.raises(PodiumInputError):
        ingest(comp, tmp_path)
    assert (manifest_path.read_bytes(), task_path.read_bytes()) == before


def test_all_problems_are_reported_together(comp: Path, tmp_path: Path) -> None:
    def break_two_rows(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[3, "label"] = ""
        frame.loc[5, "id"] = "a/b"
        return frame

    edit_csv(comp / "train.csv", break_two_rows)
    message = ingest_fails(comp, tmp_path)
    assert "2 problem(s)" in message
    assert "line 5: label column 'label' is empty" in message
    assert "line 7: id 'a/b'" in message


# --- broken images ----------------------------------------------------------------------------


def test_missing_image_file(comp: Path, tmp_path: Path) -> None:
    image_id = first_train_id(comp)
    image = comp / "train" / f"{image_id}.png"
    image.unlink()
    message = ingest_fails(comp, tmp_path)
    assert f"{image}: image file not found" in message


def test_truncated_png(comp: Path, tmp_path: Path) -> None:
    image = comp / "train" / f"{first_train_id(comp)}.png"
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 2])
    message = ingest_fails(comp, tmp_path)
    assert f"{image}: unreadable or truncated image" in message


def test_unreadable_image(comp: Path, tmp_path: Path) -> None:
    image = comp / "test" / f"{first_test_id(comp)}.png"
    image.write_bytes(b"this is not a png at all" * 4)
    message = ingest_fails(comp, tmp_path)
    assert f"{image}: unreadable or truncated image" in message


# --- broken ids -------------------------------------------------------------------------------


def test_duplicate_train_id_names_id_and_both_lines(comp: Path, tmp_path: Path) -> None:
    def duplicate(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[4, "id"] = frame.loc[1, "id"]
        return frame

    train = edit_csv(comp / "train.csv", duplicate)
    message = ingest_fails(comp, tmp_path)
    assert f"id {train.loc[1, 'id']!r} appears more than once (lines 3, 6)" in message
    assert "train.csv" in message


@pytest.mark.parametrize("bad_id", ["sub/digit", "..", "a..b"])
def test_unsafe_train_id(comp: Path, tmp_path: Path, bad_id: str) -> None:
    def rename(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[2, "id"] = bad_id
        return frame

    edit_csv(comp / "train.csv", rename)
    message = ingest_fails(comp, tmp_path)
    assert f"train.csv line 4: id {bad_id!r} contains a path separator or '..'" in message


def test_unsafe_test_id(comp: Path, tmp_path: Path) -> None:
    def rename(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[0, "id"] = "../escape"
        return frame

    edit_csv(comp / "sample_submission.csv", rename)
    message = ingest_fails(comp, tmp_path)
    assert "sample_submission.csv line 2: id '../escape' contains a path separator" in message


def test_test_id_also_in_train(comp: Path, tmp_path: Path) -> None:
    shared = first_test_id(comp)
    edit_csv(comp / "train.csv",
             lambda f: pd.concat([f, pd.DataFrame({"id": [shared], "label": ["3"]})]))
    message = ingest_fails(comp, tmp_path)
    assert f"id {shared!r} is in both train.csv and sample_submission.csv" in message


def test_sample_submission_id_without_test_image(comp: Path, tmp_path: Path) -> None:
    edit_csv(comp / "sample_submission.csv",
             lambda f: pd.concat([f, pd.DataFrame({"id": ["ghost"], "label": ["0"]})]))
    message = ingest_fails(comp, tmp_path)
    assert "sample_submission.csv: id 'ghost' has no image" in message
    assert str(comp / "test" / "ghost.png") in message


def test_test_image_without_sample_submission_row(comp: Path, tmp_path: Path) -> None:
    stray = comp / "test" / "stray_0001.png"
    shutil.copy(comp / "test" / f"{first_test_id(comp)}.png", stray)
    message = ingest_fails(comp, tmp_path)
    assert f"{stray}: test image has no row in sample_submission.csv" in message


# --- broken labels ----------------------------------------------------------------------------


def test_empty_label(comp: Path, tmp_path: Path) -> None:
    def blank(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[6, "label"] = ""
        return frame

    edit_csv(comp / "train.csv", blank)
    message = ingest_fails(comp, tmp_path)
    assert "train.csv line 8: label column 'label' is empty" in message


def test_label_not_in_configured_classes(comp: Path, tmp_path: Path) -> None:
    def relabel(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[0, "label"] = "11"
        return frame

    edit_csv(comp / "train.csv", relabel)
    message = ingest_fails(comp, tmp_path, classes=tuple(str(d) for d in range(10)))
    assert "train.csv line 2: label '11' is not one of the classes" in message
    assert "competition.classes" in message


def test_binary_task_with_three_classes(comp: Path, tmp_path: Path) -> None:
    edit_csv(comp / "train.csv",
             lambda f: f.assign(label=(f["label"].astype(int) % 3).astype(str)))
    message = ingest_fails(comp, tmp_path, task="binary")
    assert "task is binary but column 'label' has 3 classes ['0', '1', '2']" in message
    assert "competition.task" in message


def test_multilabel_sets_are_normalised_into_class_order(comp: Path, tmp_path: Path) -> None:
    """Label sets are split on spaces, their classes inferred from every label, and each
    cell rewritten in class order without repeats, so equal sets compare equal."""
    def tag(frame: pd.DataFrame) -> pd.DataFrame:
        digits = frame["label"].astype(int)
        frame["label"] = [("small " if d < 5 else "big ") + ("odd" if d % 2 else "even")
                          for d in digits]
        frame.loc[0, "label"] = "odd  big big"  # extra spaces, repeats, out of order
        return frame

    edit_csv(comp / "train.csv", tag)
    manifest = ingest(comp, tmp_path, task="multilabel")
    spec = TaskSpec.load(outputs(tmp_path)[1])
    assert spec.task == "multilabel" and spec.classes == ("big", "even", "odd", "small")
    train = manifest[manifest["split"] == "train"]
    assert train["target"].iloc[0] == "big odd"
    encoded = spec.encode(train["target"])
    assert encoded.shape == (len(train), 4) and (encoded.sum(axis=1) == 2).all()


def test_multilabel_from_one_column_per_label(comp: Path, tmp_path: Path) -> None:
    def columns(frame: pd.DataFrame) -> pd.DataFrame:
        digits = frame["label"].astype(int)
        return frame.drop(columns="label").assign(
            even=(digits % 2 == 0).astype(int).astype(str),
            odd=(digits % 2 == 1).astype(int).astype(str),
            big=(digits >= 5).astype(int).astype(str))

    train = edit_csv(comp / "train.csv", columns)
    manifest = ingest(comp, tmp_path, task="multilabel", label_columns=("big", "even", "odd"))
    spec = TaskSpec.load(outputs(tmp_path)[1])
    assert spec.classes == ("big", "even", "odd")
    labels = manifest.loc[manifest["split"] == "train", "target"].tolist()
    expected = [" ".join(c for c in ("big", "even", "odd") if row[c] == "1")
                for _, row in train.iterrows()]
    assert labels == expected

    def spoil(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[3, "odd"] = "yes"
        return frame

    edit_csv(comp / "train.csv", spoil)
    message = ingest_fails(comp, tmp_path / "bad", task="multilabel",
                           label_columns=("big", "even", "odd"))
    assert "train.csv line 5: label column 'odd' holds 'yes', not 0 or 1" in message
    message = ingest_fails(comp, tmp_path / "bad", label_columns=("big",))
    assert "competition.label_columns needs task multilabel" in message


def test_multilabel_label_outside_classes_names_line(comp: Path, tmp_path: Path) -> None:
    edit_csv(comp / "train.csv", lambda f: f.assign(label="cat").assign(
        label=lambda g: g["label"].where(g.index != 3, "cat bird")))
    message = ingest_fails(comp, tmp_path, task="multilabel", classes=("cat", "dog"))
    assert "train.csv line 5: label 'bird' is not one of the classes" in message


def test_ordinal_grades_and_regression_values(comp: Path, tmp_path: Path) -> None:
    edit_csv(comp / "train.csv", lambda f: f.assign(label=f["label"] + ".0"))
    manifest = ingest(comp, tmp_path, task="ordinal", metric="qwk")
    spec = TaskSpec.load(outputs(tmp_path)[1])
    assert spec.classes == tuple(str(d) for d in range(10)) and spec.prediction_columns == ["pred"]
    train = manifest[manifest["split"] == "train"]
    assert not train["target"].str.contains(".", regex=False).any()  # "3.0" -> "3"
    ingest(comp, tmp_path / "regression", task="regression", metric="rmse")
    assert TaskSpec.load(outputs(tmp_path / "regression")[1]).classes == ()


def test_bad_value_targets_name_their_lines(comp: Path, tmp_path: Path) -> None:
    def spoil(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[2, "label"] = "2.5"
        frame.loc[4, "label"] = "high"
        return frame

    edit_csv(comp / "train.csv", spoil)
    message = ingest_fails(comp, tmp_path, task="ordinal", metric="qwk")
    assert "train.csv line 4: target '2.5' in column 'label' is not a whole-number grade" in message
    assert "train.csv line 6: target 'high'" in message
    message = ingest_fails(comp, tmp_path, task="regression", metric="rmse")
    assert "line 6: target 'high' in column 'label' is not a finite number" in message
    assert "line 4" not in message  # 2.5 is a fine regression target
    message = ingest_fails(comp, tmp_path, task="regression", metric="accuracy")
    assert "competition.metric" in message and "rmse" in message


# --- broken tables ----------------------------------------------------------------------------


def test_train_csv_without_target_column(comp: Path, tmp_path: Path) -> None:
    edit_csv(comp / "train.csv", lambda f: f.drop(columns=["label"]))
    message = ingest_fails(comp, tmp_path)
    assert re.search(r"train\.csv: no column 'label' \(config key competition\.target\)", message)


def test_configured_target_not_in_train_csv(comp: Path, tmp_path: Path) -> None:
    with pytest.raises(PodiumInputError, match=r"no column 'diagnosis' \(config key "
                                               r"competition\.target\)"):
        ingest(comp, tmp_path, target="diagnosis")


def test_missing_train_csv(comp: Path, tmp_path: Path) -> None:
    (comp / "train.csv").unlink()
    message = ingest_fails(comp, tmp_path)
    assert f"{comp / 'train.csv'}: file not found (config key competition.train_csv)" in message


def test_missing_competition_folder(tmp_path: Path) -> None:
    message = ingest_fails(tmp_path / "nowhere", tmp_path)
    assert "competition.dir" in message
    assert "nowhere" in message


def test_unknown_metric_is_refused_before_reading(comp: Path, tmp_path: Path) -> None:
    message = ingest_fails(comp, tmp_path, metric="acc")
    assert "competition.metric" in message


def test_class_order_ignores_set_order_and_non_finite_numbers() -> None:
    from podium.tasks.classify.targets import _class_sort_key

    labels = ["nan", "10", "2.0", "b", "2", "1", "inf", "a"]
    expected = ["1", "2", "2.0", "10", "a", "b", "inf", "nan"]
    assert sorted(labels, key=_class_sort_key) == expected
    assert sorted(reversed(labels), key=_class_sort_key) == expected


def test_small_embedded_subset_keeps_every_class_in_test(tmp_path: Path) -> None:
    write_digits_competition(tmp_path / "small", max_images=25)
    sample = pd.read_csv(tmp_path / "small/solution.csv")
    assert sample["label"].nunique() == 10
    with pytest.raises(PodiumInputError, match="embedded_max_images"):
        write_digits_competition(tmp_path / "tiny", max_images=15)


def test_digits_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(PodiumInputError, match="not empty"):
        write_digits_competition(tmp_path)
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_image_column_gives_per_row_paths(comp: Path, tmp_path: Path) -> None:
    (comp / "nested").mkdir()
    frame = read_csv(comp / "train.csv")
    first = frame["id"].iloc[0]
    shutil.move(comp / "train" / f"{first}.png", comp / "nested" / "moved.png")
    frame["file"] = [f"train/{i}.png" for i in frame["id"]]
    frame.loc[0, "file"] = "nested/moved.png"
    write_csv(frame, comp / "train.csv")
    manifest = ingest(comp, tmp_path, image_column="file")
    assert manifest.loc[manifest["id"] == first, "path"].item() == str(
        (comp / "nested/moved.png").resolve())


@pytest.mark.parametrize("bad_path", ["../outside.png", "/etc/passwd", ""])
def test_image_column_paths_must_stay_inside(comp: Path, tmp_path: Path, bad_path: str) -> None:
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        frame["file"] = [f"train/{i}.png" for i in frame["id"]]
        frame.loc[2, "file"] = bad_path
        return frame

    edit_csv(comp / "train.csv", edit)
    message = ingest_fails(comp, tmp_path, image_column="file")
    assert "line 4" in message and "image path" in message


def test_missing_image_column_names_the_key(comp: Path, tmp_path: Path) -> None:
    message = ingest_fails(comp, tmp_path, image_column="file")
    assert "competition.image_column" in message


@pytest.fixture(scope="module")
def full_digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("full") / "comp"
    write_digits_competition(root)
    return root


def _corrupt_middle_image(comp: Path) -> str:
    ids = read_csv(comp / "train.csv")["id"]
    assert len(ids) > 1000
    victim = ids.iloc[len(ids) // 2]
    path = comp / "train" / f"{victim}.png"
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    return victim


def test_corrupt_image_among_a_thousand_is_named(full_digits: Path, tmp_path: Path) -> None:
    comp = tmp_path / "comp"
    shutil.copytree(full_digits, comp)
    victim = _corrupt_middle_image(comp)
    message = ingest_fails(comp, tmp_path, threads=2)
    assert f"{victim}.png" in message and "truncated" in message


def test_skip_policy_reports_and_leaves_out_bad_train_images(full_digits: Path,
                                                               tmp_path: Path) -> None:
    comp = tmp_path / "comp"
    shutil.copytree(full_digits, comp)
    victim = _corrupt_middle_image(comp)
    skipped = tmp_path / "skipped.csv"
    manifest_path, task_path = outputs(tmp_path)
    manifest = ingest_competition(CompetitionLayout(root=comp, bad_train_images="skip"),
                                  manifest_path, task_path, threads=2, skipped_path=skipped)
    assert victim not in set(manifest["id"])
    assert (manifest["split"] == "train").sum() == len(read_csv(comp / "train.csv")) - 1
    report = pd.read_csv(skipped)
    assert report["id"].tolist() == [victim] and "truncated" in report["problem"].iloc[0]


def test_skip_policy_still_stops_on_bad_test_images(comp: Path, tmp_path: Path) -> None:
    victim = sorted((comp / "test").iterdir())[0]
    victim.write_bytes(b"not an image")
    message = ingest_fails(comp, tmp_path, bad_train_images="skip")
    assert victim.name in message


def test_group_column_reaches_the_manifest(comp: Path, tmp_path: Path) -> None:
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        frame["patient"] = [f"p{k % 5}" if k % 7 else "" for k in range(len(frame))]
        return frame

    frame = edit_csv(comp / "train.csv", edit)
    manifest = ingest(comp, tmp_path, group_column="patient")
    train = manifest[manifest["split"] == "train"].set_index("id")
    expected = frame.set_index("id")["patient"].replace("", np.nan)
    assert train["group"].isna().sum() == (expected.isna()).sum()
    assert train["group"].dropna().to_dict() == expected.dropna().to_dict()
    assert manifest.loc[manifest["split"] == "test", "group"].isna().all()


def test_missing_group_column_names_the_key(comp: Path, tmp_path: Path) -> None:
    assert "competition.group_column" in ingest_fails(comp, tmp_path, group_column="patient")


def _external(tmp_path: Path, comp: Path, n: int = 6) -> Path:
    """An external source holding copies of the first n competition train images."""
    ext = tmp_path / "ext"
    (ext / "imgs").mkdir(parents=True)
    frame = read_csv(comp / "train.csv").iloc[:n]
    for image_id in frame["id"]:
        shutil.copy(comp / "train" / f"{image_id}.png", ext / "imgs" / f"{image_id}.png")
    frame.to_csv(ext / "labels.csv", index=False)
    return ext


def test_external_source_joins_train(comp: Path, tmp_path: Path) -> None:
    from podium.data.ingest import ExternalSource

    ext = _external(tmp_path, comp)
    source = ExternalSource(name="old", dir=ext, train_csv="labels.csv",
                            train_images="imgs/{id}.png")
    manifest = ingest(comp, tmp_path, external=(source,))
    rows = manifest[manifest["source"] == "old"]
    assert len(rows) == 6 and rows["id"].str.startswith("old__").all()
    assert rows["train_only"].all() and (rows["split"] == "train").all()
    assert not manifest.loc[manifest["source"] == "competition", "train_only"].any()


def test_external_label_outside_classes_is_named(comp: Path, tmp_path: Path) -> None:
    from podium.data.ingest import ExternalSource

    ext = _external(tmp_path, comp)
    edit_csv(ext / "labels.csv", lambda f: f.assign(label=["7", "99", "3", "1", "2", "0"]))
    source = ExternalSource(name="old", dir=ext, train_csv="labels.csv",
                            train_images="imgs/{id}.png")
    message = ingest_fails(comp, tmp_path, external=(source,))
    assert "labels.csv line 3" in message and "'99'" in message


def test_missing_external_folder_names_the_key(comp: Path, tmp_path: Path) -> None:
    from podium.data.ingest import ExternalSource

    source = ExternalSource(name="old", dir=tmp_path / "nowhere")
    assert "competition.external[old].dir" in ingest_fails(comp, tmp_path, external=(source,))


def test_layout_from_config_section(tmp_path: Path) -> None:
    layout = CompetitionLayout.from_config({
        "dir": str(tmp_path), "target": "y", "classes": [0, 1], "embedded_max_images": None,
        "external": [{"name": "old", "dir": "/data/old", "validate": True}],
    })
    assert layout.root == tmp_path and layout.target == "y" and layout.classes == ("0", "1")
    assert layout.external[0].validate and layout.external[0].dir == Path("/data/old")


def test_train_and_test_sides_make_the_same_manifest_and_read_only_their_files(comp, tmp_path):
    """The workflow ingests each split on its own (new test images must not rerun the train
    side); together they give ingest_competition's rows, train first."""
    whole = ingest(comp, tmp_path)
    out = tmp_path / "sides"
    layout = CompetitionLayout(root=comp)
    sample = comp / "sample_submission.csv"
    kept = sample.read_bytes()
    sample.unlink()  # the train side must not need it
    train = ingest_train(layout, out / "train.parquet", out / "task.json")
    sample.write_bytes(kept)
    shutil.rmtree(comp / "train")  # nor the test side the train images
    test = ingest_test(layout, out / "test.parquet")
    merged = merge_manifests(out / "train.parquet", out / "test.parquet", out / "all.parquet")
    assert set(train["split"]) == {"train"} and set(test["split"]) == {"test"}
    assert list(merged.columns) == list(whole.columns)
    assert list(merged["split"]) == ["train"] * len(train) + ["test"] * len(test)
    pd.testing.assert_frame_equal(
        merged.sort_values("id").reset_index(drop=True),
        whole.sort_values("id").reset_index(drop=True))
    assert TaskSpec.load(out / "task.json") == TaskSpec.load(tmp_path / "out/task.json")


def test_test_side_names_its_problems(comp, tmp_path):
    train_id = read_csv(comp / "train.csv")["id"].iloc[0]
    edit_csv(comp / "sample_submission.csv",
             lambda f: pd.concat([f, pd.DataFrame({"id": [train_id, "ghost"], "label": "0"})]))
    with pytest.raises(PodiumInputError) as info:
        ingest_test(CompetitionLayout(root=comp), tmp_path / "test.parquet")
    message = str(info.value)
    assert f"id {train_id!r} is in both train.csv and sample_submission.csv" in message
    assert "sample_submission.csv: id 'ghost' has no image" in message
    assert not (tmp_path / "test.parquet").exists()


def test_merge_refuses_an_id_in_both_splits(comp, tmp_path):
    layout = CompetitionLayout(root=comp)
    train = ingest_train(layout, tmp_path / "train.parquet", tmp_path / "task.json")
    test = ingest_test(layout, tmp_path / "test.parquet")
    test.assign(id=[train["id"].iloc[3], *test["id"].iloc[1:]]).to_parquet(
        tmp_path / "test.parquet")
    with pytest.raises(PodiumInputError, match=rf"1 ids are both train and test images.*"
                                               rf"{train['id'].iloc[3]}"):
        merge_manifests(tmp_path / "train.parquet", tmp_path / "test.parquet",
                        tmp_path / "all.parquet")
    assert not (tmp_path / "all.parquet").exists()
