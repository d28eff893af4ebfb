"""Segmentation folds on tiny packed arrays: outputs, learning, determinism, test prediction
from model.pt, settings errors and resume after SIGTERM."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from podium.errors import PodiumInputError
from podium.metrics.masks import mean_dice
from podium.tasks.segment import fit as segment_fit
from podium.tasks.segment.fit import (
    SegmentFoldOutputs,
    SegmentSettings,
    load_segment_model,
    predict_probabilities,
    predict_segment_test,
    segmenter_trainer,
    train_segment_fold,
)
from podium.tasks.segment.models import build_segmenter
from podium.train.runtime import Runtime

N, SIZE = 24, 32
MODEL = {"arch": "unet", "encoder": "resnet10t"}
FAST = {**MODEL, "epochs": 3, "batch_size": 2, "lr": 3e-3, "warmup_epochs": 0.0,
        "weight_decay": 1e-4}


def _inputs(root: Path) -> dict[str, Path]:
    """Noisy dark images with one bright square (the mask); every third image is empty.
    Folds alternate 0/1, except two train-only images (-1) and two left out of folds.csv."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 60, (N, SIZE, SIZE, 1), dtype=np.uint8)
    masks = np.zeros((N, SIZE, SIZE), dtype=np.uint8)
    for i in range(N):
        if i % 3 == 2:
            continue
        side = int(rng.integers(8, 15))
        y, x = rng.integers(0, SIZE - side, 2)
        images[i, y:y + side, x:x + side] = rng.integers(180, 255, (side, side, 1))
        masks[i, y:y + side, x:x + side] = 1
    ids = [f"im{i}" for i in range(N)]
    folds = pd.DataFrame({"id": ids, "fold": np.arange(N) % 2})
    folds.loc[[0, 2], "fold"] = -1
    paths = {name: root / name for name in ("train.npy", "masks.npy", "index.parquet",
                                            "folds.csv")}
    np.save(paths["train.npy"], images)
    np.save(paths["masks.npy"], masks)
    pd.DataFrame({"id": ids, "row": range(N)}).to_parquet(paths["index.parquet"])
    folds.drop(index=[4, 5]).to_csv(paths["folds.csv"], index=False)
    return paths


def _outputs(out: Path) -> SegmentFoldOutputs:
    return SegmentFoldOutputs(*(out / n for n in ("model.pt", "oof_probs.npy",
                                                  "oof_index.parquet", "history.csv",
                                                  "metrics.json")))


def _run(inputs: dict[str, Path], out: Path, resume_dir: Path | None = None,
         **settings) -> dict:
    return train_segment_fold(SegmentSettings(**{**FAST, **settings}), 1, inputs["train.npy"],
                              inputs["index.parquet"], inputs["masks.npy"], inputs["folds.csv"],
                              _outputs(out), threads=1, resume_dir=resume_dir, name="unet")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    return _inputs(tmp_path_factory.mktemp("segment"))


AUGMENTED = {"batch_size": 4, "crop": 16, "tile": 16, "tta": ["identity", "hflip", "rot90"],
             "augment": {
                 "transform": {"__class_fullname__": "Compose", "transforms": [
                     {"__class_fullname__": "HorizontalFlip", "p": 0.5},
                     {"__class_fullname__": "RandomRotate90", "p": 0.5}]}}}


def test_fold_writes_its_outputs_learns_and_is_deterministic(inputs, tmp_path):
    summary = _run(inputs, tmp_path / "a", **AUGMENTED)
    _run(inputs, tmp_path / "b", **AUGMENTED)
    oof = np.load(tmp_path / "a/oof_probs.npy")
    assert np.array_equal(oof, np.load(tmp_path / "b/oof_probs.npy"))
    valid = [f"im{i}" for i in range(N) if i % 2 == 1 and i != 5]
    index = pd.read_parquet(tmp_path / "a/oof_index.parquet")
    assert list(index.columns) == ["id", "row"] and list(index["id"]) == valid
    assert list(index["row"]) == [int(v[2:]) for v in valid]
    assert oof.dtype == np.float16 and oof.shape == (len(valid), 1, SIZE, SIZE)
    assert ((oof >= 0) & (oof <= 1)).all()
    # 24 images: 11 validated, 2 left out of folds.csv, 11 trained on (train-only -1 included)
    assert summary["n_valid"] == 11 and summary["n_train"] == 11
    masks = np.load(inputs["masks.npy"])[index["row"]]
    empty = mean_dice(np.zeros_like(masks), masks)  # the all-empty prediction's Dice
    assert summary["oof_dice_tta"] > empty + 0.2, summary
    assert summary["tta"] == ["identity", "hflip", "rot90"] and summary["tile"] == 16
    history = pd.read_csv(tmp_path / "a/history.csv")
    assert list(history.columns) == ["epoch", "train_loss", "valid_dice", "lr", "seconds"]
    assert list(history["epoch"]) == [1, 2, 3]
    assert summary["best_valid_dice"] == history["valid_dice"].max()
    assert json.loads((tmp_path / "a/metrics.json").read_text())["fold"] == 1
    state = torch.load(tmp_path / "a/model.pt", weights_only=True)
    assert state["in_chans"] == 1 and state["settings"]["crop"] == 16


def test_the_one_fold_trainer_freezes_the_encoder_and_keeps_ema_weights(inputs):
    """Segmentation trains with the classification trainer's recipe keys: a frozen encoder
    does not move in its first epoch while the decoder does, and with EMA the weights that
    are validated and saved are the average, not the last step's."""
    settings = SegmentSettings(**{**FAST, "freeze_backbone_epochs": 1, "ema_decay": 0.5,
                                  "accumulate_steps": 2, "clip_grad_norm": 1.0})
    images, masks = np.load(inputs["train.npy"]), np.load(inputs["masks.npy"])
    trainer = segmenter_trainer(settings, images, masks, np.arange(12), Runtime.detect(1), 1,
                                "unet")
    assert trainer.ema is not None and trainer.eval_model is trainer.ema.module
    encoder = [p.detach().clone() for p in trainer.model.encoder.parameters()]
    decoder = [p.detach().clone() for p in trainer.model.decoder.parameters()]
    trainer.train_epoch(0)
    assert all(torch.equal(a, b) for a, b in zip(encoder, trainer.model.encoder.parameters(),
                                                 strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(decoder, trainer.model.decoder.parameters(),
                                                     strict=True))
    trainer.train_epoch(1)
    assert not all(torch.equal(a, b) for a, b in zip(encoder, trainer.model.encoder.parameters(),
                                                     strict=True))
    averaged = dict(trainer.eval_model.named_parameters())
    assert any(not torch.equal(p, averaged[name]) for name, p in trainer.model.named_parameters())


def test_plain_epochs_keep_the_crop(inputs):
    """Before augment_after_epochs a segmentation fold trains without the user's augmentation
    but still on crops: a plain epoch at full size would change the training shape (and on
    large images the memory) instead of only switching augmentation off."""
    flip = {"transform": {"__class_fullname__": "Compose", "transforms": [
        {"__class_fullname__": "HorizontalFlip", "p": 1.0}]}}
    settings = SegmentSettings(**{**FAST, "crop": 16, "augment": flip,
                                  "augment_after_epochs": 1})
    images, masks = np.load(inputs["train.npy"]), np.load(inputs["masks.npy"])
    trainer = segmenter_trainer(settings, images, masks, np.arange(12), Runtime.detect(1), 1,
                                "unet")
    trainer.train_epoch(0)
    plain = trainer.dataset.augment
    assert plain is not None and plain is not trainer.augment
    image, mask = trainer.dataset[0]
    assert image.shape == (16, 16, 1) and mask.shape == (16, 16)
    trainer.train_epoch(1)
    assert trainer.dataset.augment is trainer.augment


def test_recipe_keys_train_a_segmentation_fold(inputs, tmp_path):
    summary = _run(inputs, tmp_path, ema_decay=0.5, accumulate_steps=2, clip_grad_norm=5.0,
                   epochs=4)
    masks = np.load(inputs["masks.npy"])[pd.read_parquet(tmp_path / "oof_index.parquet")["row"]]
    assert summary["oof_dice_tta"] > mean_dice(np.zeros_like(masks), masks) + 0.2, summary
    assert torch.load(tmp_path / "model.pt", weights_only=True)["settings"]["ema_decay"] == 0.5


def test_model_pt_predicts_the_test_images_as_the_training_job_did(inputs, tmp_path):
    """predict_segment_test rebuilds the network from model.pt alone and gives the OOF
    numbers the job computed with the best in-memory model; an untrained net does worse."""
    settings = {"tta": ["d4"]}
    _run(inputs, tmp_path / "a", **settings)
    oof_index = pd.read_parquet(tmp_path / "a/oof_index.parquet")
    oof_index.iloc[::-1].to_parquet(tmp_path / "test_index.parquet")  # any order of rows
    summary = predict_segment_test(SegmentSettings(**{**FAST, **settings}),
                                   tmp_path / "a/model.pt", inputs["train.npy"],
                                   tmp_path / "test_index.parquet", tmp_path / "test.npy",
                                   tmp_path / "test_index_out.parquet")
    assert summary["n_test"] == len(oof_index) and len(summary["tta"]) == 8
    test = np.load(tmp_path / "test.npy")
    assert test.dtype == np.float16
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "test_index_out.parquet"),
                                  oof_index.iloc[::-1].reset_index(drop=True))
    oof = np.load(tmp_path / "a/oof_probs.npy")
    assert np.allclose(test[::-1].astype(np.float32), oof.astype(np.float32), atol=2e-3)

    runtime = Runtime.detect(1)
    model, _ = load_segment_model(tmp_path / "a/model.pt", runtime, "unet")
    array = np.load(inputs["train.npy"], mmap_mode="r")
    rows = oof_index["row"].to_numpy()
    direct = predict_probabilities(model, array, rows, runtime,
                                   SegmentSettings(**MODEL, tta=["d4"]), 5)
    assert direct.dtype == np.float32 and np.allclose(direct, oof.astype(np.float32), atol=2e-3)
    scaled = predict_probabilities(model, array, rows, runtime, SegmentSettings(
        **MODEL, tta=["hflip", "rot90"], tta_scales=[1.0, 1.5], tile=16), 5)
    assert scaled.shape == direct.shape and np.isfinite(scaled).all()
    # tiles no smaller than the image are the plain forward pass
    whole = predict_probabilities(model, array, rows, runtime, SegmentSettings(**MODEL, tile=32), 8)
    plain = predict_probabilities(model, array, rows, runtime, SegmentSettings(**MODEL), 8)
    assert np.array_equal(whole, plain)
    masks = np.load(inputs["masks.npy"])[rows]
    untrained = runtime.model(build_segmenter("unet", "resnet10t", 1, 1))
    baseline = predict_probabilities(untrained, array, rows, runtime, SegmentSettings(**MODEL),
                                     8)
    assert mean_dice(plain[:, 0] > 0.5, masks) > mean_dice(baseline[:, 0] > 0.5, masks) + 0.2


def test_sigterm_keeps_the_epoch_and_a_rerun_resumes_to_the_same_result(inputs, tmp_path,
                                                                       monkeypatch):
    """SIGTERM right after epoch 1 is saved exits 143 with no outputs; rerunning the same job
    continues from epoch 1 and ends with the OOF of an uninterrupted run."""
    _run(inputs, tmp_path / "reference")
    resume_dir = tmp_path / "resume"
    save = segment_fit.ResumeStore.save

    def save_then_sigterm(store, state):
        save(store, state)
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(segment_fit.ResumeStore, "save", save_then_sigterm)
    with pytest.raises(SystemExit) as info:
        _run(inputs, tmp_path / "resumed", resume_dir=resume_dir)
    assert info.value.code == 143
    assert torch.load(resume_dir / "state.pt", weights_only=False)["epochs_done"] == 1
    assert not (tmp_path / "resumed").exists()  # outputs only once the fold completes
    monkeypatch.undo()

    summary = _run(inputs, tmp_path / "resumed", resume_dir=resume_dir)
    assert summary["resumed_from_epoch"] == 1
    assert not (resume_dir / "state.pt").exists()
    assert list(pd.read_csv(tmp_path / "resumed/history.csv")["epoch"]) == [1, 2, 3]
    assert np.array_equal(np.load(tmp_path / "resumed/oof_probs.npy"),
                          np.load(tmp_path / "reference/oof_probs.npy"))


def test_nan_loss_stops_the_fold_naming_the_epoch_and_batch(inputs, tmp_path):
    with pytest.raises(PodiumInputError, match=r"models\.unet fold 1: training stopped.*"
                                               r"epoch 1, batch \d+.*models\.unet\.lr"):
        _run(inputs, tmp_path / "a", epochs=1, lr=1e30, optimizer="sgd")
    assert not (tmp_path / "a").exists()


def test_unknown_and_bad_settings_name_their_config_key(inputs, tmp_path):
    entry = {"arch": "unet", "backbone": "resnet10t"}  # as the config spells it
    with pytest.raises(PodiumInputError,
                       match=r"models\.seg\.backbon: not a setting.*Did you mean backbone"):
        SegmentSettings.from_config({**entry, "backbon": "resnet18"}, name="seg")
    with pytest.raises(PodiumInputError,
                       match=r"models\.seg\.pooling: does not apply to segmentation models"):
        SegmentSettings.from_config({**entry, "pooling": "avg"}, name="seg")
    with pytest.raises(PodiumInputError, match=r"models\.seg\.arch: missing"):
        SegmentSettings.from_config({"backbone": "resnet10t"}, name="seg")
    settings = SegmentSettings.from_config({**entry, "tta": ["d4"], "crop": 16})
    assert settings.crop == 16 and settings.encoder == "resnet10t"
    scaled = SegmentSettings.from_config({**entry, "tta": ["hflip"], "tta_scales": [1.0, 1.5]})
    assert [view.label for view in scaled.views()] == ["hflip", "hflip@1.5"]
    with pytest.raises(PodiumInputError, match=r"models\.seg\.tta.*hflip"):
        SegmentSettings.from_config({**entry, "tta": ["hflp"]}, name="seg")
    with pytest.raises(PodiumInputError, match=r"models\.seg\.tile"):
        SegmentSettings.from_config({**entry, "tile": 0}, name="seg")
    with pytest.raises(PodiumInputError, match=r"models\.unet\.crop: 64 is larger"):
        _run(inputs, tmp_path / "a", crop=64)


def test_two_mask_classes_train_as_two_sigmoid_channels(tmp_path):
    """Packed bits 0 and 1 are two classes: bright squares (bit 0) and dim ones (bit 1), one
    of each per image, sometimes overlapping. The fold predicts two channels, each learns its
    own class, and model.pt predicts the test images with two channels as well."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 40, (N, SIZE, SIZE, 1), dtype=np.uint8)
    masks = np.zeros((N, SIZE, SIZE), dtype=np.uint8)
    for i in range(N):
        for bit, (low, high) in enumerate(((200, 255), (90, 130))):
            side = int(rng.integers(6, 11))
            y, x = rng.integers(0, SIZE - side, 2)
            images[i, y:y + side, x:x + side] = rng.integers(low, high, (side, side, 1))
            masks[i, y:y + side, x:x + side] |= 1 << bit
    paths = _inputs(tmp_path)
    np.save(paths["train.npy"], images)
    np.save(paths["masks.npy"], masks)
    summary = train_segment_fold(
        SegmentSettings(**{**FAST, "epochs": 10, "patience": 10}), 1, paths["train.npy"],
        paths["index.parquet"], paths["masks.npy"], paths["folds.csv"],
        _outputs(tmp_path / "out"), name="unet", n_classes=2)
    oof = np.load(tmp_path / "out/oof_probs.npy").astype(np.float32)
    rows = pd.read_parquet(tmp_path / "out/oof_index.parquet")["row"].to_numpy()
    assert oof.shape == (len(rows), 2, SIZE, SIZE) and summary["n_classes"] == 2
    truth = [(masks[rows] >> bit) & 1 for bit in (0, 1)]
    for k in (0, 1):  # each channel matches its own class better than the other class
        own = mean_dice(oof[:, k] > 0.5, truth[k])
        other = mean_dice(oof[:, k] > 0.5, truth[1 - k])
        assert own > 0.4 and own > other + 0.25, (k, own, other)
    predict_segment_test(SegmentSettings(**FAST), tmp_path / "out/model.pt", paths["train.npy"],
                         tmp_path / "out/oof_index.parquet", tmp_path / "test.npy",
                         tmp_path / "test_index.parquet", name="unet")
    test = np.load(tmp_path / "test.npy").astype(np.float32)
    assert test.shape == oof.shape and np.allclose(test, oof, atol=2e-3)


def test_packed_masks_with_more_classes_than_bits_are_refused(inputs, tmp_path):
    with pytest.raises(PodiumInputError, match="1 to 8 mask classes"):
        train_segment_fold(SegmentSettings(**FAST), 1, inputs["train.npy"],
                           inputs["index.parquet"], inputs["masks.npy"], inputs["folds.csv"],
                           _outputs(tmp_path), name="unet", n_classes=9)
