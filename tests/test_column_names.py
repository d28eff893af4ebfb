"""A competition's columns may be named like podium's own (``source``, ``split``, ``path``,
``target``, ``id``, ...): the manifest keeps the labels in its fixed ``target`` column, and no
podium table (manifest, dedup tables, leaks, folds, submission) mixes the two."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from podium.data.dedup import find_duplicates, label_conflicts, leaked_test_images
from podium.data.folds import assign_folds
from podium.data.ingest import (
    GROUP_COLUMN,
    MANIFEST_COLUMNS,
    CompetitionLayout,
    ingest_competition,
    ingest_test,
    ingest_train,
    merge_manifests,
)
from podium.errors import PodiumInputError
from podium.submit.submission import format_submission
from podium.task import TARGET_COLUMN, TaskSpec
from podium.tasks.segment.rle import rle_decode
from podium.tasks.segment.shapes import write_shapes_competition
from podium.tasks.segment.submission import encode_test_masks, segmentation_submission

PODIUM_COLUMNS = (*MANIFEST_COLUMNS, GROUP_COLUMN)


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _rename(root: Path, columns: dict[str, str],
            tables: tuple[str, ...] = ("train.csv", "sample_submission.csv")) -> None:
    for name in tables:
        _read(root / name).rename(columns=columns).to_csv(root / name, index=False)


@pytest.mark.parametrize("name", PODIUM_COLUMNS)
def test_a_target_named_like_a_podium_column(comp: Path, tmp_path: Path, name: str) -> None:
    """Each of podium's manifest columns as the competition's target (with a group column
    beside it): both ingest paths write podium's columns once and the labels under
    ``target``."""
    id_column = "image_id" if name == "id" else "id"
    labels = _read(comp / "train.csv")["label"]
    _rename(comp, {"id": id_column, "label": name})
    train_csv = _read(comp / "train.csv")
    train_csv.assign(patient=[f"p{k % 4}" for k in range(len(train_csv))]).to_csv(
        comp / "train.csv", index=False)
    layout = CompetitionLayout(root=comp, id_column=id_column, target=name,
                               group_column="patient")
    whole = ingest_competition(layout, tmp_path / "all.parquet", tmp_path / "task.json")
    ingest_train(layout, tmp_path / "train.parquet", tmp_path / "task.json")
    ingest_test(layout, tmp_path / "test.parquet")
    merged = merge_manifests(tmp_path / "train.parquet", tmp_path / "test.parquet",
                             tmp_path / "merged.parquet")
    for manifest in (whole, merged, pd.read_parquet(tmp_path / "merged.parquet")):
        assert list(manifest.columns) == list(PODIUM_COLUMNS)
        train = manifest[manifest["split"] == "train"]
        assert list(train["id"]) == list(train_csv[id_column])
        assert list(train[TARGET_COLUMN]) == list(labels)
        assert manifest.loc[manifest["split"] == "test", TARGET_COLUMN].isna().all()
        assert set(manifest["source"]) == {"competition"} and not manifest["train_only"].any()
        assert list(train[GROUP_COLUMN]) == [f"p{k % 4}" for k in range(len(train))]
    spec = TaskSpec.load(tmp_path / "task.json")
    assert spec.target == name and spec.id_column == id_column
    assert spec.classes == tuple(str(d) for d in range(10))


def test_id_image_and_group_columns_named_like_podium_columns(comp: Path, tmp_path: Path
                                                              ) -> None:
    """Ids in ``split``, image paths in ``path``, groups in ``source``, labels in ``fold``:
    the manifest, the dedup tables, the leaks and the folds keep podium's own columns."""
    train_csv = _read(comp / "train.csv")
    sample = _read(comp / "sample_submission.csv")
    shutil.copy(comp / "train" / f"{train_csv['id'][0]}.png",  # one test image leaks
                comp / "test" / f"{sample['id'][0]}.png")
    pd.DataFrame({"split": train_csv["id"], "path": "train/" + train_csv["id"] + ".png",
                  "source": [f"w{k % 5}" for k in range(len(train_csv))],
                  "fold": train_csv["label"]}).to_csv(comp / "train.csv", index=False)
    _rename(comp, {"id": "split", "label": "fold"}, ("sample_submission.csv",))
    layout = CompetitionLayout(root=comp, id_column="split", image_column="path",
                               group_column="source", target="fold")
    manifest = ingest_competition(layout, tmp_path / "all.parquet", tmp_path / "task.json")
    spec = TaskSpec.load(tmp_path / "task.json")

    assert list(manifest.columns) == list(PODIUM_COLUMNS)
    train = manifest[manifest["split"] == "train"].reset_index(drop=True)
    assert list(train["id"]) == list(train_csv["id"])
    assert list(train[TARGET_COLUMN]) == list(train_csv["label"])
    assert list(train[GROUP_COLUMN]) == [f"w{k % 5}" for k in range(len(train))]
    assert [Path(p).name for p in train["path"]] == list(train_csv["id"] + ".png")
    assert set(manifest["source"]) == {"competition"}

    clusters, _ = find_duplicates(manifest, near=None)
    assert list(clusters.columns) == ["id", "cluster", "split"]
    leaks = leaked_test_images(clusters, manifest, TARGET_COLUMN)
    assert list(leaks["test_id"]) == [sample["id"][0]]
    assert list(leaks["train_label"]) == [train_csv["label"][0]]
    assert label_conflicts(clusters, manifest, TARGET_COLUMN).empty
    train_clusters, _ = find_duplicates(train, near=None)
    folds = assign_folds(train, train_clusters, set(), spec.encode(train[TARGET_COLUMN]),
                         n_folds=2, seed=0)
    assert list(folds.columns) == ["id", "fold"] and set(folds["fold"]) == {0, 1}
    groups = train.set_index("id")[GROUP_COLUMN]
    assert (folds.groupby(folds["id"].map(groups))["fold"].nunique() == 1).all()


def test_label_columns_named_like_podium_columns(comp: Path, tmp_path: Path) -> None:
    """Multilabel 0/1 columns named ``source``, ``split``, ``target`` and ``fold`` become
    the classes; the manifest's ``target`` holds each image's set."""
    train_csv = _read(comp / "train.csv")
    digits = train_csv["label"].astype(int)
    on = {"source": digits % 2 == 0, "split": digits % 2 == 1, "target": digits >= 5,
          "fold": digits < 3}
    columns = tuple(on)
    pd.DataFrame({"id": train_csv["id"], **{c: v.astype(int).astype(str) for c, v in on.items()}}
                 ).to_csv(comp / "train.csv", index=False)
    manifest = ingest_competition(
        CompetitionLayout(root=comp, task="multilabel", metric="f1_macro",
                          label_columns=columns),
        tmp_path / "all.parquet", tmp_path / "task.json")
    spec = TaskSpec.load(tmp_path / "task.json")
    assert spec.classes == columns
    assert spec.prediction_columns == [f"p_{c}" for c in columns]
    assert list(manifest.columns) == list(MANIFEST_COLUMNS)
    expected = [" ".join(c for c in columns if on[c][k]) for k in range(len(train_csv))]
    assert list(manifest.loc[manifest["split"] == "train", TARGET_COLUMN]) == expected


def test_segmentation_class_and_target_columns_named_like_podium_columns(tmp_path: Path
                                                                         ) -> None:
    """Rows per image and class, the class in ``source`` and the masks in ``split``: one
    manifest row per image, and the submission fills the sample's ``split`` column."""
    shapes = tmp_path / "shapes"
    write_shapes_competition(shapes, n_images=24, size=40, classes=["ellipse", "box"])
    _rename(shapes, {"class": "source", "rle": "split"},
            ("train.csv", "sample_submission.csv", "solution.csv"))
    layout = CompetitionLayout(root=shapes, task="segmentation", metric="dice",
                               target="split", options={"class_column": "source"},
                               classes=("ellipse", "box"))
    manifest = ingest_competition(layout, tmp_path / "all.parquet", tmp_path / "task.json")
    spec = TaskSpec.load(tmp_path / "task.json")
    assert list(manifest.columns) == list(MANIFEST_COLUMNS)
    assert set(manifest["source"]) == {"competition"}
    table = _read(shapes / "train.csv")
    cells = manifest[manifest["split"] == "train"].set_index("id")[TARGET_COLUMN]
    assert sorted(cells.index) == sorted(set(table["id"]))
    for image_id, rows in table.groupby("id"):
        assert cells[image_id] == "|".join(rows.set_index("source").loc[list(spec.classes),
                                                                        "split"])

    solution = _read(shapes / "solution.csv")
    truth = solution.set_index(["id", "source"])["split"]
    test_ids = pd.Series(list(dict.fromkeys(solution["id"])))
    maps = np.stack([[rle_decode(truth[i, c], (40, 40)) for c in spec.classes]
                     for i in test_ids]).astype(np.uint8)
    sample = _read(shapes / "sample_submission.csv")
    submission = segmentation_submission(
        sample, spec, encode_test_masks(maps, test_ids, manifest, "F"))
    assert list(submission.columns) == list(sample.columns)
    assert list(submission["source"]) == list(sample["source"])
    assert list(submission["split"]) == list(solution["split"])


@pytest.mark.parametrize("target", ["source", "split"])
def test_submission_fills_a_target_named_like_a_podium_column(target: str) -> None:
    spec = TaskSpec(task="multiclass", target=target, classes=("a", "b"), metric="accuracy",
                    id_column="id")
    predictions = pd.DataFrame({"id": ["x", "y"], "p_a": [0.9, 0.2], "p_b": [0.1, 0.8]})
    sample = pd.DataFrame({"id": ["y", "x"], target: ["a", "a"]})
    submission = format_submission(sample, predictions, spec)
    assert submission.to_dict("list") == {"id": ["y", "x"], target: ["b", "a"]}


@pytest.mark.parametrize("keys", [{"id_column": "label"}, {"image_column": "label"},
                                  {"group_column": "id"}])
def test_one_column_for_two_roles_is_refused(comp: Path, tmp_path: Path, keys: dict) -> None:
    with pytest.raises(PodiumInputError, match="both name column") as info:
        ingest_competition(CompetitionLayout(root=comp, **keys), tmp_path / "all.parquet",
                           tmp_path / "task.json")
    key = next(iter(keys))
    assert f"competition.{key}" in str(info.value)
    assert not (tmp_path / "all.parquet").exists()
