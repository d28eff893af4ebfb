"""Real snakemake runs of the whole DAG on .test/multiclass (120 digits, 2 folds, 1 epoch):
most tests read one shared complete run (conftest.finished_tiny_run) and leave it as they
found it."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import local_env

from podium.ensemble.stack import make_stacker, stack_features, stack_out_of_fold
from podium.task import TaskSpec
from podium.tasks.classify.entries import TrainTruth

pytestmark = pytest.mark.slow

ENTRIES = {"resnet10t": "models", "regnetx_002": "models", "mean": "ensemble",
           "geomean": "ensemble", "hill_climb": "ensemble", "lightgbm": "ensemble",
           "xgboost": "ensemble", "catboost": "ensemble", "mean+eq": "postprocess"}


def test_manifest_contract(finished_tiny_run):
    manifest = pd.read_parquet(finished_tiny_run.results / "data/manifest.parquet")
    assert list(manifest.columns) == ["id", "split", "path", "target", "height", "width",
                                      "channels", "md5", "pixel_md5", "source", "train_only"]
    assert set(manifest["split"]) == {"train", "test"}
    assert manifest["id"].is_unique
    assert (manifest["height"] == 8).all() and (manifest["channels"] == 1).all()
    assert manifest.loc[manifest.split == "test", "target"].isna().all()
    assert manifest.loc[manifest.split == "train", "target"].notna().all()


def test_dedup_and_folds_contract(finished_tiny_run):
    results = finished_tiny_run.results
    manifest = pd.read_parquet(results / "data/manifest.parquet")
    clusters = pd.read_csv(results / "dedup/clusters.csv", dtype={"id": str})
    pairs = pd.read_csv(results / "dedup/pairs.csv")
    folds = pd.read_csv(results / "folds.csv", dtype={"id": str})
    assert list(clusters.columns) == ["id", "cluster", "split"]
    assert sorted(clusters["id"]) == sorted(manifest["id"])
    assert list(pairs.columns) == ["id_a", "id_b", "kind", "score"]
    assert list(folds.columns) == ["id", "fold"]
    assert sorted(folds["id"]) == sorted(manifest.loc[manifest.split == "train", "id"])
    assert set(folds["fold"]) == {0, 1}
    joined = folds.merge(clusters, on="id")
    assert (joined.groupby("cluster")["fold"].nunique() == 1).all()


def test_prediction_contracts(finished_tiny_run):
    results = finished_tiny_run.results
    spec = TaskSpec.load(results / "data/task.json")
    columns = ["id"] + [f"p_{c}" for c in spec.classes]
    folds = pd.read_csv(results / "folds.csv", dtype={"id": str})
    sample = pd.read_csv(results / "competition/sample_submission.csv", dtype=str)
    for model in ("resnet10t", "regnetx_002"):
        fold_oof_ids = []
        for k in (0, 1):
            fold_dir = results / f"models/{model}/fold{k}"
            oof = pd.read_parquet(fold_dir / "oof.parquet")
            test = pd.read_parquet(fold_dir / "test.parquet")
            assert list(oof.columns) == columns and list(test.columns) == columns
            assert set(oof["id"]) == set(folds.loc[folds.fold == k, "id"])
            assert sorted(test["id"]) == sorted(sample["id"])
            fold_oof_ids += list(oof["id"])
            history = pd.read_csv(fold_dir / "history.csv")
            assert len(history) == 1 and "valid_accuracy" in history
            assert json.loads((fold_dir / "metrics.json").read_text())["fold"] == k
            assert (fold_dir / "model.pt").stat().st_size > 0
        assert sorted(fold_oof_ids) == sorted(folds["id"])
    for name, kind in ENTRIES.items():
        oof = pd.read_parquet(results / f"{kind}/{name}/oof.parquet")
        test = pd.read_parquet(results / f"{kind}/{name}/test.parquet")
        cv = json.loads((results / f"{kind}/{name}/cv.json").read_text())
        assert list(oof.columns) == columns and list(test.columns) == columns
        assert sorted(oof["id"]) == sorted(folds["id"])
        assert sorted(test["id"]) == sorted(sample["id"])
        np.testing.assert_allclose(oof[columns[1:]].sum(axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(test[columns[1:]].sum(axis=1), 1.0, atol=1e-5)
        assert len(cv["fold_scores"]) == 2
        assert cv["cv_mean"] == pytest.approx(np.mean(cv["fold_scores"]))


def test_leaderboard_and_submission(finished_tiny_run):
    results = finished_tiny_run.results
    board = pd.read_csv(results / "leaderboard.csv")
    assert list(board.columns) == ["name", "kind", "metric", "cv_mean", "cv_std"]
    assert set(board["name"]) == set(ENTRIES)
    assert set(board["kind"]) == {"model", "blend", "stacker", "postprocess"}
    assert board["cv_mean"].is_monotonic_decreasing
    sample = pd.read_csv(results / "competition/sample_submission.csv", dtype=str)
    submission = pd.read_csv(results / "submission.csv", dtype=str)
    assert list(submission.columns) == list(sample.columns)
    assert list(submission["id"]) == list(sample["id"])
    best = board["name"].iloc[0]
    best_test = pd.read_parquet(results / f"{ENTRIES[best]}/{best}/test.parquet")
    spec = TaskSpec.load(results / "data/task.json")
    expected = np.asarray(spec.classes)[
        best_test.set_index("id").loc[sample["id"], spec.prediction_columns].to_numpy()
        .argmax(axis=1)]
    assert list(submission["label"]) == list(expected)
    score = json.loads((results / "score.json").read_text())
    assert score["metric"] == "accuracy" and 0.0 <= score["score"] <= 1.0
    assert "held-out accuracy" in (results / "logs/score_submission/all.log").read_text()


def test_adversarial_validation_reports_auc_and_weights(finished_tiny_run):
    results = finished_tiny_run.results
    summary = json.loads((results / "adversarial/adversarial.json").read_text())
    assert 0.0 <= summary["auc"] <= 1.0 and summary["top_features"]
    weights = pd.read_csv(results / "adversarial/weights.csv", dtype={"id": str})
    manifest = pd.read_parquet(results / "data/manifest.parquet")
    assert sorted(weights["id"]) == sorted(manifest.loc[manifest.split == "train", "id"])
    assert weights["weight"].mean() == pytest.approx(1.0, abs=1e-6)


def test_plots_are_images(finished_tiny_run):
    for name in ("leaderboard", "learning_curves", "adversarial", "cv_folds", "best_entry"):
        png = finished_tiny_run.results / f"plots/{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size > 5000


def test_level2_oof_never_sees_its_own_labels(finished_tiny_run):
    """Scrambling fold 0's labels must leave the stacker's fold-0 OOF predictions unchanged,
    and the stacker artifact must equal a refit from the level-1 artifacts."""
    results = finished_tiny_run.results
    spec = TaskSpec.load(results / "data/task.json")
    truth = TrainTruth.load(results / "folds.csv", results / "data/manifest.parquet", spec)
    oofs = {m: pd.read_parquet(results / f"models/{m}/oof.parquet")
            for m in ("resnet10t", "regnetx_002")}
    tests = {m: pd.read_parquet(results / f"models/{m}/test.parquet") for m in oofs}
    test_ids = tests["resnet10t"]["id"]
    features = stack_features(oofs, truth.ids, spec.prediction_columns)
    test_features = stack_features(tests, test_ids, spec.prediction_columns)
    params = finished_tiny_run.config["ensemble"]["stackers"]["lightgbm"]["params"]

    def fit(y):
        return stack_out_of_fold(lambda: make_stacker("lightgbm", params, 0, 1), features, y,
                                 truth.fold, test_features, spec.n_classes)[0]

    original = fit(truth.y)
    artifact = pd.read_parquet(results / "ensemble/lightgbm/oof.parquet")
    np.testing.assert_allclose(artifact[spec.prediction_columns].to_numpy(), original,
                               atol=1e-9)
    scrambled = truth.y.copy()
    held = truth.fold == 0
    scrambled[held] = (scrambled[held] + 1) % spec.n_classes
    refit = fit(scrambled)
    np.testing.assert_array_equal(refit[held], original[held])
    assert not np.allclose(refit[~held], original[~held])


def test_bad_input_stops_before_training(workflow):
    """A train row without its image fails the train side's ingest with the path named, and
    nothing trains."""
    workflow.snakemake("--until", "make_embedded_competition")
    competition = workflow.results / "competition"
    victim = sorted((competition / "train").iterdir())[3]
    victim.unlink()
    proc = workflow.snakemake(check=False)
    assert proc.returncode != 0
    assert victim.stem in proc.output and "train" in proc.output
    assert not (workflow.results / "models").exists()
    assert (competition / "train.csv").exists()


def test_bad_test_input_stops_the_test_side_and_keeps_the_models(finished_tiny_run):
    """A missing test image fails the test side's ingest with its path named; the models
    train all the same (they never read a test file), so fixing the test folder reruns only
    test-side work. The shared run was made so (conftest.finished_tiny_run): its first call
    ran without one test image, which was then put back."""
    first = finished_tiny_run.missing_test_image
    assert first["returncode"] != 0
    assert first["victim"].stem in first["output"] and "has no image" in first["output"]
    assert not first["submission"]
    assert len(first["weights"]) == 4
    planned = first["planned_after_fix"]
    assert planned["ingest_test"] == 1 and planned["predict_test"] == 4
    assert not {"ingest_train", "make_folds", "train_model"} & set(planned)


def test_config_type_error_names_the_key(workflow):
    workflow.config["folds"]["n_folds"] = "five"
    workflow.write_config()
    proc = workflow.snakemake("-n", check=False)
    assert proc.returncode != 0
    assert "n_folds" in proc.output and "five" in proc.output


def test_default_profile_loads_without_flags(workflow):
    """Plain `snakemake` picks up workflow/profiles/default (through the top-level link)."""
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n"], cwd=workflow.root,
                          capture_output=True, text=True, timeout=300, env=local_env())
    assert proc.returncode == 0, proc.stderr
    assert "profile profiles/default" in proc.stdout + proc.stderr


def test_report_holds_every_plot_and_the_provenance(finished_tiny_run):
    """`snakemake --report` builds one HTML page with the leaderboard, CV per fold, the best
    entry's confusion matrix, learning curves, the dedup montage and adversarial validation,
    plus Snakemake's own provenance (rules, runtimes, configuration)."""
    report = finished_tiny_run.root / "report.html"
    finished_tiny_run.snakemake("--report", str(report))
    html = report.read_text()
    for name in ("leaderboard.png", "cv_folds.png", "best_entry.png", "learning_curves.png",
                 "montage.png", "adversarial.png"):
        assert name in html, name
    for rule in ("train_model", "stack_models", "find_duplicates"):
        assert rule in html
    assert "Where the top leaderboard entry" in html  # a caption
