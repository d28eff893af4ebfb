"""The segmentation demos' models end to end at test size (.test/segmentation-*; the demos in
.test/shapes* are the README's, a few minutes each): RLE masks in, U-Net family models per
fold, a mean blend and fitted mask post-processing on the leaderboard, an RLE submission."""

from __future__ import annotations

import ast
import json

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import recorded_params, respelled_yaml, reversed_keys

from podium.settings import canonical
from podium.tasks.segment.rle import rle_decode

pytestmark = pytest.mark.slow

@pytest.mark.parametrize(("override", "message"), [
    ({"preprocess": {"resize": "pad"}}, "preprocess.resize: segmentation needs stretch"),
    ({"models": {"unet": {"arch": None}}},
     "models.unet.arch: missing; a segmentation model names its decoder"),
    ({"models": {"fpn": {"pooling": "gem"}}},
     "models.fpn.pooling: does not apply to segmentation models"),
    ({"competition": {"rle_format": "siim_acr"}},
     "competition.rle_format: 'siim_acr' is not one of kaggle, siim. Did you mean siim?"),
    ({"competition": {"rle_format": "siim", "mask_order": "C"}},
     "RLE format 'siim' numbers pixels in order F only"),
    ({"submission": {"mask_size": [350]}}, "mask_size"),
])
def test_settings_segmentation_cannot_use_are_refused_before_anything_runs(workflow, override,
                                                                           message):
    from conftest import _merge, dot_test_config

    demo = yaml.safe_load((workflow.root / dot_test_config("shapes")).read_text())
    (workflow.root / "bad.yaml").write_text(yaml.safe_dump(_merge(demo, override)))
    proc = workflow.snakemake("-n", "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0 and message in proc.output


def _small_run(tmp_path, name: str):
    """A complete run of .test/<name>: a demo variant on 80 images and 2 folds."""
    from conftest import Workflow, dot_test_config

    flow = Workflow(tmp_path, dot_test_config(name))
    flow.snakemake(timeout=1200)
    return flow, flow.results


@pytest.fixture(scope="module")
def classes_run(tmp_path_factory):
    """.test/segmentation-classes: the shapes demo's U-Net and FPN, their mean blend and mask
    post-processing for each, on two mask classes written in SIIM's relative RLE format."""
    return _small_run(tmp_path_factory.mktemp("classes"), "segmentation-classes")


def test_two_mask_classes_end_to_end(classes_run):
    """The two-class demo on a small run: per-class rows in, a Dice per class in each entry's
    cv.json, per-class post-processing, and the sample's per-class rows filled."""
    _, results = classes_run
    board = pd.read_csv(results / "leaderboard.csv")
    assert {"unet", "mean", "unet+masks"} <= set(board["name"])
    unet = json.loads((results / "models/unet/cv.json").read_text())
    assert len(unet["class_scores"]) == 2 and unet["cv_mean"] > 0.5
    post = json.loads((results / "postprocess/unet+masks/cv.json").read_text())
    assert [c["class"] for c in post["details"]["classes"]] == [0, 1]
    assert np.load(results / "models/unet/test_probs.npy").shape[1:] == (2, 64, 64)
    sample = pd.read_csv(results / "competition/sample_submission.csv", dtype=str,
                         keep_default_na=False)
    submission = pd.read_csv(results / "submission.csv", dtype=str, keep_default_na=False)
    assert list(submission.columns) == ["id", "class", "rle"]
    assert submission[["id", "class"]].equals(sample[["id", "class"]])
    assert submission["rle"].str.len().gt(0).any()
    score = json.loads((results / "score.json").read_text())
    assert score["n"] == len(sample) and score["score"] > 0.5


def test_siim_format_at_a_mask_size_end_to_end(classes_run):
    """The same run's masks in SIIM-ACR's relative RLE format, ingested, packed and submitted
    in it, the submission at a fixed 32 x 48 (submission.mask_size) and scored there."""
    flow, results = classes_run
    assert json.loads((results / "data/task.json").read_text())["options"]["rle_format"] == "siim"
    submission = pd.read_csv(results / "submission.csv", dtype=str, keep_default_na=False)
    masks = [rle_decode(rle, (32, 48), "F", "siim") for rle in submission["rle"]]
    # a row per test image and class: most images hold one of the two shapes, some both
    images_with_a_mask = submission.loc[[m.any() for m in masks], "id"].nunique()
    assert images_with_a_mask > submission["id"].nunique() // 2
    refused = 0
    for rle in submission["rle"]:
        try:
            rle_decode(rle, (64, 64), "F", "kaggle")
        except ValueError:
            refused += 1
    assert refused > len(masks) // 3  # relative starts do not ascend
    score = json.loads((results / "score.json").read_text())
    assert score["metric"] == "dice" and score["score"] > 0.5
    assert "siim RLE at 32x48" in (results / "logs/write_submission/all.log").read_text()
    assert flow.planned_jobs() == {}


def test_leaderboard_ranks_models_blend_and_post_processed_masks(classes_run):
    _, results = classes_run
    board = pd.read_csv(results / "leaderboard.csv")
    assert set(board["metric"]) == {"dice"}
    assert {"unet", "fpn", "mean", "unet+masks", "fpn+masks", "mean+masks"} == set(board["name"])
    assert not {"resnet10t", "regnetx_002", "lightgbm"} & set(board["name"])
    assert board["cv_mean"].between(0, 1).all()
    gains = {}
    for name in ("unet", "fpn", "mean"):
        details = json.loads((results / f"postprocess/{name}+masks/cv.json").read_text())
        gains[name] = details["details"]["dice_after"] - details["details"]["dice_before"]
    # post-processing fitted fold by fold never costs OOF Dice here and gains where the
    # model's threshold is off (kept defaults give exactly the entry's own Dice)
    assert min(gains.values()) >= 0 and max(gains.values()) > 0.001, gains


def test_fold_outputs_and_a_rerun_does_nothing(classes_run):
    flow, results = classes_run
    for model in ("unet", "fpn"):
        for k in (0, 1):
            fold = results / f"models/{model}/fold{k}"
            assert {"model.pt", "oof_probs.npy", "oof_index.parquet", "history.csv",
                    "metrics.json", "test_probs.npy"} <= {p.name for p in fold.iterdir()}
    for plot in ("leaderboard", "cv_folds", "learning_curves", "masks"):
        png = (results / f"plots/{plot}.png").read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 10_000, plot
    assert flow.planned_jobs() == {}


def test_a_plotting_change_reruns_only_the_plots(classes_run):
    """Code hashes cover the podium modules each rule's script imports."""
    flow, _ = classes_run
    plots = flow.root / "src/podium/tasks/segment/plots.py"
    original = plots.read_text()
    plots.write_text(original + "\n_A_CODE_CHANGE = 1\n")
    try:
        planned = flow.planned_jobs()
    finally:
        plots.write_text(original)
    assert planned == {"plot_results": 1, "all": 1}


def test_the_config_reordered_and_respelled_reruns_nothing(classes_run):
    """Params compare by content in segmentation too (.test/segmentation-classes layered over
    config.yaml): both files with every mapping's keys reversed and their numbers respelled
    plan nothing, and every recorded param has sorted keys."""
    flow, _ = classes_run
    files = [flow.root / "config.yaml", flow.config_path]
    originals = [path.read_text() for path in files]
    try:
        for path, text in zip(files, originals, strict=True):
            path.write_text(respelled_yaml(reversed_keys(yaml.safe_load(text))))
        planned = flow.planned_jobs()
    finally:
        for path, text in zip(files, originals, strict=True):
            path.write_text(text)
    assert planned == {}
    for text in recorded_params(flow.root):
        assert repr(canonical(ast.literal_eval(text))) == text


def test_instances_end_to_end(tmp_path):
    """The instance demo on a small run: rows per object in, instance labels packed, every
    entry scored by the instance mAP, the watershed fitted per entry, a row per predicted
    object out, scored against the held-out objects."""
    flow, results = _small_run(tmp_path, "segmentation-instances")
    board = pd.read_csv(results / "leaderboard.csv")
    assert set(board["metric"]) == {"instance_map"}
    assert {"unet", "mean", "unet+masks", "unet+instances"} <= set(board["name"])
    post = json.loads((results / "postprocess/unet+instances/cv.json").read_text())
    assert {"threshold", "min_distance", "core_threshold", "min_area"} <= set(
        post["details"]["fitted"])
    assert post["cv_mean"] > 0.4 and post["oof_dice"] > 0.7
    assert np.load(results / "postprocess/unet+instances/test_probs.npy").dtype == np.int32
    sample = pd.read_csv(results / "competition/sample_submission.csv", dtype=str,
                         keep_default_na=False)
    submission = pd.read_csv(results / "submission.csv", dtype=str, keep_default_na=False)
    assert list(submission.columns) == list(sample.columns)
    assert list(dict.fromkeys(submission["id"])) == list(sample["id"])
    assert len(submission) > len(sample)  # several objects in some images
    score = json.loads((results / "score.json").read_text())
    assert score["metric"] == "instance_map" and score["score"] > 0.4
    assert flow.planned_jobs() == {}
