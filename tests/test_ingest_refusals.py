"""Ingest's refusals and warnings a new user meets: a CSV in another encoding, a train set of
one class, classes with fewer images than folds, images that train.csv does not list."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO

from podium import cli
from podium.data.folds import assign_folds, thin_classes_warning
from podium.data.ingest import CompetitionLayout, ingest_competition, ingest_train
from podium.data.targets import targets_for
from podium.errors import PodiumInputError
from podium.schema import ingest_test_keys
from podium.task import TARGET_COLUMN


def ingest(root: Path, tmp_path: Path, **layout: object) -> pd.DataFrame:
    out = tmp_path / "out"
    return ingest_competition(CompetitionLayout(root=root, **layout), out / "manifest.parquet",
                              out / "task.json")


def refusal(root: Path, tmp_path: Path, **layout: object) -> str:
    with pytest.raises(PodiumInputError) as info:
        ingest(root, tmp_path, **layout)
    assert not (tmp_path / "out" / "manifest.parquet").exists()
    return str(info.value)


def write_latin1_labels(root: Path) -> tuple[int, int]:
    """Rename the classes with accents and save train.csv as latin-1; the line and byte
    offset of the first non-ASCII byte."""
    train = pd.read_csv(root / "train.csv", dtype=str)
    train["label"] = "chiffre_é" + train["label"]
    text = train.to_csv(index=False)
    (root / "train.csv").write_bytes(text.encode("latin-1"))
    offset = text.encode("latin-1").index("é".encode("latin-1"))
    return text[:offset].count("\n") + 1, offset


# -------------------------------------------------------------------- encodings


def test_latin1_train_csv_names_line_byte_offset_and_encoding(comp, tmp_path):
    line, offset = write_latin1_labels(comp)
    message = refusal(comp, tmp_path)
    assert f"{comp / 'train.csv'} line {line}, column " in message
    assert f"byte 0xe9 at byte offset {offset} is not utf-8" in message
    assert "competition.encoding" in message and "latin-1" in message


def test_competition_encoding_reads_latin1(comp, tmp_path):
    write_latin1_labels(comp)
    sample = comp / "sample_submission.csv"
    sample.write_bytes(sample.read_text().encode("latin-1"))
    manifest = ingest(comp, tmp_path, encoding="latin-1")
    labels = manifest.loc[manifest["split"] == "train", TARGET_COLUMN]
    assert labels.str.startswith("chiffre_é").all()


def test_unknown_encoding_names_the_key(comp, tmp_path):
    assert "config key competition.encoding" in refusal(comp, tmp_path, encoding="latin-99")


def test_encoding_is_in_the_schema_and_both_sides_params():
    import yaml

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    encoding = schema["properties"]["competition"]["properties"]["encoding"]
    assert encoding["default"] == "utf-8" and encoding["description"]
    assert "encoding" in ingest_test_keys()  # the test side's params too


# ----------------------------------------------------------------- one class


@pytest.mark.parametrize("task", ["multiclass", "multilabel", "binary"])
def test_a_train_set_of_one_class_is_refused(comp, tmp_path, task):
    train = pd.read_csv(comp / "train.csv", dtype=str)
    train["label"] = "7"
    train.to_csv(comp / "train.csv", index=False)
    classes = ("3", "7") if task == "binary" else None
    message = refusal(comp, tmp_path, task=task, classes=classes)
    assert str(comp / "train.csv") in message
    assert "the class '7'" in message and "at least two classes" in message


# ------------------------------------------------------------- classes vs folds


def test_thin_classes_warning_names_class_and_counts():
    labels = np.array([0] * 10 + [1] * 2 + [2] * 5)
    warning = thin_classes_warning(labels, ["cat", "dog", "eel"], 5)
    assert "'dog' (2)" in warning and "'cat'" not in warning and "'eel'" not in warning
    assert "5 folds (folds.n_folds)" in warning
    assert thin_classes_warning(labels, ["cat", "dog", "eel"], 2) is None
    multilabel = np.array([[1, 0], [1, 1], [1, 0]])
    assert "'b' (1)" in thin_classes_warning(multilabel, ["a", "b"], 3)
    grades = np.array([1.0, 1.0, 2.0, 3.0, 3.0, 3.0])
    assert "'2' (1)" in thin_classes_warning(grades, ["1", "2", "3"], 2)


def test_assign_folds_logs_thin_classes(caplog):
    ids = [f"i{k}" for k in range(12)]
    manifest = pd.DataFrame({"id": ids, "split": "train", "train_only": False})
    clusters = pd.DataFrame({"id": ids, "cluster": range(12)})
    labels = np.array([0] * 10 + [1] * 2)
    with caplog.at_level(logging.WARNING, logger="podium.data.folds"):
        assign_folds(manifest, clusters, set(), labels, 3, 0, classes=["a", "b"])
    assert "'b' (2)" in caplog.text and "3 folds" in caplog.text


def test_podium_check_warns_of_classes_with_fewer_images_than_folds(comp, tmp_path, capsys):
    own = tmp_path / "my.yaml"
    own.write_text("folds:\n  n_folds: 5\n")
    train = pd.read_csv(comp / "train.csv", dtype=str)
    rare = train["label"].value_counts().index[-1]
    assert (train["label"] == rare).sum() < 5
    assert cli.main(["check", str(comp), "--config", str(own)]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "warning:" in out and f"'{rare}' (" in out
    assert "5 folds (folds.n_folds)" in out


# --------------------------------------------------------- unlisted train images


def test_unlisted_train_images_are_counted_and_logged(comp, tmp_path, capsys, caplog):
    first = sorted((comp / "train").iterdir())[0]
    for name in ("extra_a", "extra_b", "extra_c"):
        shutil.copy(first, comp / "train" / f"{name}.png")
    (comp / "train" / "notes.txt").write_text("not an image")
    with caplog.at_level(logging.WARNING, logger="podium.data.ingest"):
        ingest_train(CompetitionLayout(root=comp), tmp_path / "m.parquet", tmp_path / "t.json")
    assert "3 image files" in caplog.text and "train/extra_a.png" in caplog.text
    assert cli.main(["check", str(comp), "--config", str(REPO / "config.yaml")]) == 0
    out = capsys.readouterr().out
    assert "warning: 3 image files" in out and "no row in train.csv" in out
    assert "train/extra_a.png, train/extra_b.png, train/extra_c.png" in out


def test_unlisted_images_with_an_image_column(comp, tmp_path, caplog):
    train = pd.read_csv(comp / "train.csv", dtype=str)
    train["path"] = "train/" + train["id"] + ".png"
    train.iloc[1:].to_csv(comp / "train.csv", index=False)  # the first image loses its row
    with caplog.at_level(logging.WARNING, logger="podium.data.ingest"):
        ingest_train(CompetitionLayout(root=comp, image_column="path"), tmp_path / "m.parquet",
                     tmp_path / "t.json")
    assert "1 image file in" in caplog.text and train["path"].iloc[0] in caplog.text


def test_mask_files_beside_the_images_are_not_unlisted_images(comp):
    from podium.data.ingest import unlisted_train_images

    first = sorted((comp / "train").iterdir())[0]
    shutil.copy(first, comp / "train" / f"{first.stem}_mask.png")
    ids = pd.read_csv(comp / "train.csv", dtype=str)["id"]
    layout = CompetitionLayout(root=comp, task="segmentation",
                               options={"train_masks": "train/{id}_mask.png"})
    side_files = targets_for("segmentation").side_files(layout)
    assert unlisted_train_images(layout, ids, side_files=side_files) == []
    assert unlisted_train_images(CompetitionLayout(root=comp), ids) == [
        f"train/{first.stem}_mask.png"]
