"""A real snakemake run of .test/dedup, a user competition folder of planted JPEG duplicates:
near duplicates found, clusters kept in one fold, the train/test leak and a label conflict
reported."""

from __future__ import annotations

import json

import pandas as pd
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def planted_run(tmp_path_factory):
    """A complete run of .test/dedup, its folders written by its prepare.py."""
    from conftest import Workflow, dot_test_config

    flow = Workflow(tmp_path_factory.mktemp("planted_flow"), dot_test_config("dedup"))
    planted = flow.prepare()
    flow.snakemake()
    return flow, planted["files"], planted["leaked"], planted["conflicted"]


def test_near_duplicates_cluster_and_stay_in_one_fold(planted_run):
    flow, files, _, _ = planted_run
    results = flow.results
    clusters = pd.read_csv(results / "dedup/clusters.csv")
    clusters = clusters[~clusters["id"].str.startswith("old__")]
    pairs = pd.read_csv(results / "dedup/pairs.csv")
    folds = pd.read_csv(results / "folds.csv")
    folds = folds[folds["fold"] >= 0]
    assert "near" in set(pairs["kind"])
    source = files.set_index("id")["source"]
    assert (clusters.assign(source=source.loc[clusters["id"]].to_numpy())
            .groupby("cluster")["source"].nunique() == 1).all()
    assert clusters["cluster"].nunique() == files["source"].nunique()
    assert (folds.merge(clusters, on="id").groupby("cluster")["fold"].nunique() == 1).all()
    assert (results / "dedup/montage.png").stat().st_size > 5000


def test_leak_and_conflict_are_reported(planted_run):
    flow, _, leaked, conflicted = planted_run
    leaks = pd.read_csv(flow.results / "dedup/leaks.csv")
    assert leaked["id"] in set(leaks["test_id"])
    conflicts = pd.read_csv(flow.results / "dedup/conflicts.csv")
    assert conflicted["id"] in set(conflicts["id"])
    submission = pd.read_csv(flow.results / "submission.csv")
    assert len(submission) == 9


def test_drop_and_leak_policies(planted_run):
    flow, files, leaked, conflicted = planted_run
    results = flow.results
    excluded = pd.read_csv(results / "dedup/excluded.csv")
    assert conflicted["id"] in set(excluded["id"])
    assert set(excluded["reason"]) == {"conflicting labels",
                                       "external duplicate of a validated train image"}
    assert "old__copy" in set(excluded["id"])
    folds = pd.read_csv(results / "folds.csv")
    assert not set(excluded["id"]) & set(folds["id"])
    oof = pd.read_parquet(results / "models/resnet10t/oof.parquet")
    assert sorted(oof["id"]) == sorted(folds.loc[folds["fold"] >= 0, "id"])
    leaks = pd.read_csv(results / "dedup/leaks.csv", dtype={"train_label": str})
    submission = pd.read_csv(results / "submission.csv", dtype=str).set_index("id")
    for leak in leaks[~leaks["label_conflict"]].itertuples():
        assert submission.at[leak.test_id, "label"] == leak.train_label
    assert leaked["id"] in set(leaks["test_id"])


def test_changing_a_dedup_setting_reruns_from_dedup(planted_run):
    flow, _, _, _ = planted_run
    flow.config["dedup"]["min_correlation"] = 0.95
    flow.write_config()
    planned = flow.planned_jobs()
    assert planned["find_train_duplicates"] == 1 and planned["find_duplicates"] == 1
    assert planned["make_folds"] == 1
    assert "ingest_train" not in planned and "preprocess_images" not in planned


def test_external_images_train_in_every_fold_and_are_never_validated(planted_run):
    flow, _, _, _ = planted_run
    results = flow.results
    folds = pd.read_csv(results / "folds.csv")
    external = folds[folds["id"].str.startswith("old__")]
    assert len(external) == 6 and (external["fold"] == -1).all()
    oof = pd.read_parquet(results / "models/resnet10t/oof.parquet")
    assert not oof["id"].str.startswith("old__").any()
    manifest = pd.read_parquet(results / "data/manifest.parquet")
    assert set(manifest.loc[manifest["id"].str.startswith("old__"), "source"]) == {"old"}
    metrics = json.loads((results / "models/resnet10t/fold0/metrics.json").read_text())
    validated = folds[folds["fold"] >= 0]
    assert metrics["n_train"] == int((validated["fold"] != 0).sum()) + 6
