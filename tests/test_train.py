"""Per-fold training on tiny packed arrays: outputs, determinism, TTA, name errors."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import albumentations as A
import numpy as np
import pandas as pd
import pytest
import torch

from podium.errors import PodiumInputError
from podium.metrics import get_metric
from podium.task import TaskSpec
from podium.tasks.classify.fit import FoldOutputs, TrainSettings, classifier_trainer, train_fold
from podium.tasks.classify.models import build_classifier
from podium.tasks.classify.predict import predict_test_fold
from podium.train.augment import build_augmentation
from podium.train.data import BatchLoader, PackedImages, reseed_worker_augmentation
from podium.train.runtime import Runtime

SPEC = TaskSpec(task="multiclass", target="label", classes=("0", "1", "2"), metric="accuracy",
                id_column="id")


def _packed_fold_inputs(root: Path, n_train: int = 48, n_test: int = 9) -> dict[str, Path]:
    """Class k images are bright in stripe k, so a model can learn something in one epoch."""
    rng = np.random.default_rng(0)

    def images(labels: np.ndarray) -> np.ndarray:
        out = rng.integers(0, 40, (len(labels), 16, 16, 1), dtype=np.uint8)
        for i, k in enumerate(labels):
            out[i, :, 5 * k : 5 * k + 5] = 220
        return out

    y = np.arange(n_train) % 3
    ids = [f"tr{i}" for i in range(n_train)]
    test_ids = [f"te{i}" for i in range(n_test)]
    paths = {name: root / name for name in ("train.npy", "train_index.parquet", "test.npy",
                                            "test_index.parquet", "folds.csv",
                                            "manifest.parquet")}
    np.save(paths["train.npy"], images(y))
    np.save(paths["test.npy"], images(np.arange(n_test) % 3))
    pd.DataFrame({"id": ids, "row": range(n_train)}).to_parquet(paths["train_index.parquet"])
    pd.DataFrame({"id": test_ids, "row": range(n_test)}).to_parquet(paths["test_index.parquet"])
    pd.DataFrame({"id": ids, "fold": np.arange(n_train) % 2}).to_csv(paths["folds.csv"],
                                                                       index=False)
    pd.DataFrame({"id": ids + test_ids, "target": [str(v) for v in y] + [None] * n_test}
                 ).to_parquet(paths["manifest.parquet"])
    return paths


def _run(inputs: dict[str, Path], out: Path, resume_dir: Path | None = None,
         **settings) -> dict:
    outputs = FoldOutputs(*(out / n for n in ("model.pt", "oof.parquet", "history.csv",
                                              "metrics.json")))
    return train_fold(_settings(**settings), SPEC, 1, inputs["train.npy"],
                      inputs["train_index.parquet"], inputs["folds.csv"],
                      inputs["manifest.parquet"], outputs, threads=1, resume_dir=resume_dir)


def _settings(**settings) -> TrainSettings:
    base = {"backbone": "resnet10t", "epochs": 2, "batch_size": 16, "tta": ["identity",
                                                                             "hflip"]}
    return TrainSettings(**{**base, **settings})


def test_train_fold_writes_every_output_and_is_deterministic(tmp_path):
    inputs = _packed_fold_inputs(tmp_path)
    augment = {"transform": {"__class_fullname__": "Compose", "transforms": [
        {"__class_fullname__": "Affine", "rotate": [-5, 5], "p": 0.5}]}}
    summary = _run(inputs, tmp_path / "a", augment=augment)
    _run(inputs, tmp_path / "b", augment=augment)
    oof_a = pd.read_parquet(tmp_path / "a/oof.parquet")
    oof_b = pd.read_parquet(tmp_path / "b/oof.parquet")
    assert list(oof_a.columns) == ["id", "p_0", "p_1", "p_2"]
    assert set(oof_a["id"]) == {f"tr{i}" for i in range(1, 48, 2)}
    pd.testing.assert_frame_equal(oof_a, oof_b)
    assert not (tmp_path / "a/test.parquet").exists()  # test images are predict_test's job
    history = pd.read_csv(tmp_path / "a/history.csv")
    assert list(history["epoch"]) == [1, 2]
    assert {"train_loss", "valid_accuracy", "valid_logloss", "lr"} <= set(history.columns)
    assert summary["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert summary["n_valid"] == 24
    state = torch.load(tmp_path / "a/model.pt", weights_only=False)
    assert state["settings"]["backbone"] == "resnet10t" and state["in_chans"] == 1


def test_early_stopping_keeps_the_best_epoch(tmp_path):
    inputs = _packed_fold_inputs(tmp_path)
    summary = _run(inputs, tmp_path / "a", epochs=6, patience=1, lr=1e-6, warmup_epochs=0)
    history = pd.read_csv(tmp_path / "a/history.csv")
    assert len(history) < 6
    assert summary["best_epoch"] == int(history["valid_accuracy"].idxmax()) + 1


def test_unknown_names_list_close_ones():
    with pytest.raises(PodiumInputError, match="resnet10t"):
        build_classifier("resnet10", 3, 1)
    with pytest.raises(PodiumInputError, match="Affine"):
        build_augmentation({"transform": {"__class_fullname__": "Compose", "transforms": [
            {"__class_fullname__": "Afine"}]}}, 0)


def test_model_in_chans_and_classes():
    model = build_classifier("regnetx_002", 7, 1)
    assert model(torch.zeros(2, 1, 32, 32)).shape == (2, 7)


def test_images_missing_from_folds_are_neither_trained_nor_validated(tmp_path):
    inputs = _packed_fold_inputs(tmp_path)
    folds = pd.read_csv(inputs["folds.csv"])
    folds[~folds["id"].isin([f"tr{i}" for i in range(6)])].to_csv(inputs["folds.csv"],
                                                                    index=False)
    summary = _run(inputs, tmp_path / "a", epochs=1)
    assert summary["n_train"] == 21 and summary["n_valid"] == 21
    oof = pd.read_parquet(tmp_path / "a/oof.parquet")
    assert not {"tr1", "tr3", "tr5"} & set(oof["id"])


def test_multilabel_fold_trains_on_sets_and_predicts_sigmoids(tmp_path):
    """Multilabel: BCE on 0/1 rows, one sigmoid per class (rows need not sum to 1)."""
    inputs = _packed_fold_inputs(tmp_path)
    manifest = pd.read_parquet(inputs["manifest.parquet"])
    tags = {"0": "low", "1": "low odd", "2": "high"}
    manifest["target"] = manifest["target"].map(tags)
    manifest.to_parquet(inputs["manifest.parquet"])
    spec = TaskSpec(task="multilabel", target="label", classes=("high", "low", "odd"),
                    metric="f1_macro", id_column="id")
    outputs = FoldOutputs(*(tmp_path / "out" / n for n in (
        "model.pt", "oof.parquet", "history.csv", "metrics.json")))
    summary = train_fold(TrainSettings(backbone="resnet10t", epochs=3, batch_size=16, lr=0.01),
                         spec, 1, inputs["train.npy"], inputs["train_index.parquet"],
                         inputs["folds.csv"], inputs["manifest.parquet"], outputs, threads=1)
    oof = pd.read_parquet(outputs.oof)
    proba = oof[["p_high", "p_low", "p_odd"]].to_numpy()
    assert ((proba >= 0) & (proba <= 1)).all()
    assert not np.allclose(proba.sum(axis=1), 1.0)
    assert summary["metric"] == "f1_macro"
    assert "valid_f1_macro" in pd.read_csv(outputs.history).columns


RESUMABLE = {"epochs": 25, "patience": 100, "tta": ["identity"]}


def test_sigterm_saves_the_epoch_and_a_rerun_resumes_to_the_same_result(tmp_path):
    """A fold stopped by SIGTERM exits 143 with its last epoch saved; rerunning the same job
    continues from there and ends with the predictions of an uninterrupted run."""
    inputs = _packed_fold_inputs(tmp_path)
    reference = _run(inputs, tmp_path / "reference", **RESUMABLE)
    resume_dir = tmp_path / "resume"
    child = subprocess.Popen([sys.executable, "-c", f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from pathlib import Path
from test_train import RESUMABLE, _run
inputs = {{k: Path(v) for k, v in {({k: str(v) for k, v in inputs.items()})!r}.items()}}
_run(inputs, Path({str(tmp_path / "killed")!r}), resume_dir=Path({str(resume_dir)!r}),
     **RESUMABLE)
"""], stderr=subprocess.PIPE, text=True)
    state = resume_dir / "state.pt"
    deadline = time.monotonic() + 120
    while not state.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    child.send_signal(signal.SIGTERM)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 143, stderr[-2000:]
    assert "interrupted by SIGTERM" in stderr
    saved = torch.load(state, weights_only=False)["epochs_done"]
    assert 1 <= saved < RESUMABLE["epochs"]
    assert not (tmp_path / "killed/oof.parquet").exists()  # outputs only when complete

    summary = _run(inputs, tmp_path / "resumed", resume_dir=resume_dir, **RESUMABLE)
    assert summary["resumed_from_epoch"] == saved
    assert not state.exists()  # cleared once the outputs are written
    history = pd.read_csv(tmp_path / "resumed/history.csv")
    assert list(history["epoch"]) == list(range(1, RESUMABLE["epochs"] + 1))
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "resumed/oof.parquet"),
                                  pd.read_parquet(tmp_path / "reference/oof.parquet"))
    assert summary["best_epoch"] == reference["best_epoch"]


def test_nan_loss_stops_the_fold_and_keeps_the_last_good_epoch(tmp_path):
    """Epoch 1 trains the head alone; epoch 2 unfreezes a backbone with an absurd learning
    rate, so the loss overflows. The fold stops with a message and epoch 1 stays saved."""
    inputs = _packed_fold_inputs(tmp_path)
    resume_dir = tmp_path / "resume"
    with pytest.raises(PodiumInputError) as info:
        _run(inputs, tmp_path / "out", resume_dir=resume_dir, epochs=3, optimizer="sgd",
             lr=0.01, freeze_backbone_epochs=1, backbone_lr_mult=1e30, tta=["identity"])
    message = str(info.value)
    assert "models.resnet10t fold 1: training stopped" in message
    assert "nan" in message.lower() and "epoch 2" in message and "clip_grad_norm" in message
    assert f"the state after epoch 1 is kept in {resume_dir / 'state.pt'}" in message
    assert torch.load(resume_dir / "state.pt", weights_only=False)["epochs_done"] == 1
    assert not (tmp_path / "out/oof.parquet").exists()


@pytest.mark.parametrize("options", [
    {"ema_decay": 0.9, "accumulate_steps": 2, "clip_grad_norm": 1.0},
    {"schedule": "onecycle", "optimizer": "sgd", "lr": 0.05},
    {"schedule": "plateau", "backbone_lr_mult": 0.1, "freeze_backbone_epochs": 1},
    {"sampler": "class_aware", "loss": [{"name": "focal", "params": {"gamma": 2}},
                                       {"name": "cross_entropy", "weight": 0.5}]},
    {"pooling": "gem", "hidden": [32], "tta": ["d4"], "tta_scales": [1.0, 1.25],
     "tta_merge": "geomean"},
])
def test_training_options_run_and_learn(tmp_path, options):
    inputs = _packed_fold_inputs(tmp_path)
    _run(inputs, tmp_path / "out", **{"epochs": 4, "batch_size": 8, "lr": 0.01, **options})
    losses = pd.read_csv(tmp_path / "out/history.csv")["train_loss"]
    assert losses.iloc[-1] < 0.5 * losses.iloc[0]  # the options still train the model
    oof = pd.read_parquet(tmp_path / "out/oof.parquet")
    np.testing.assert_allclose(oof[["p_0", "p_1", "p_2"]].sum(axis=1), 1.0, atol=1e-5)


def test_competition_augmentations_run_from_their_serialised_form():
    """D4, HSV, CLAHE, noise, elastic and perspective, written as albumentations.to_dict
    writes them, deserialise and run on packed uint8 rows of 1 and 3 channels."""
    pipeline = A.Compose([A.D4(p=1.0), A.HueSaturationValue(p=1.0), A.CLAHE(p=1.0),
                          A.GaussNoise(p=1.0), A.ElasticTransform(p=1.0),
                          A.Perspective(p=1.0)])
    augment = build_augmentation(A.to_dict(pipeline), seed=0)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (4, 24, 24, 3), dtype=np.uint8)
    images = PackedImages(rgb, np.arange(4), np.zeros(4), augment)
    out = torch.stack([images[i][0] for i in range(4)])
    assert out.shape == (4, 24, 24, 3) and out.dtype == torch.uint8
    assert not torch.equal(out, torch.from_numpy(rgb))
    gray = build_augmentation(A.to_dict(A.Compose([A.D4(p=1.0), A.CLAHE(p=1.0),
                                                   A.GaussNoise(p=1.0)])), seed=0)
    assert PackedImages(rgb[:, :, :, :1].copy(), np.arange(4), augment=gray)[0][0].shape == (
        24, 24, 1)


def test_augmentation_waits_for_its_first_epoch(tmp_path):
    inputs = _packed_fold_inputs(tmp_path)
    flip = {"transform": {"__class_fullname__": "Compose", "transforms": [
        {"__class_fullname__": "HorizontalFlip", "p": 1.0}]}}
    settings = TrainSettings(backbone="resnet10t", epochs=3, batch_size=16, augment=flip,
                             augment_after_epochs=2)
    array = np.load(inputs["train.npy"])
    trainer = classifier_trainer(settings, SPEC, get_metric("accuracy"), array, np.arange(48),
                                 np.arange(48) % 3, 1, Runtime.detect(1), 0, "test")
    trainer.train_epoch(0)
    assert trainer.dataset.augment is None
    trainer.train_epoch(2)
    assert trainer.dataset.augment is trainer.augment


def test_bf16_autocast_trains_when_asked(tmp_path):
    """precision: bf16 runs autocast end to end (CPU autocast here, on a GPU where there is
    one); the summary says what ran."""
    summary = _run(_packed_fold_inputs(tmp_path), tmp_path / "out", precision="bf16",
                   epochs=1)
    assert summary["precision"] == "bf16"
    assert summary["channels_last"] == torch.cuda.is_available()
    oof = pd.read_parquet(tmp_path / "out/oof.parquet")
    assert np.isfinite(oof.filter(like="p_").to_numpy()).all()


@pytest.mark.parametrize("multilabel", [False, True])
def test_batch_loader_gives_the_dataloaders_batches_across_parts(multilabel):
    """Gathered batches equal what a DataLoader collates from the same rows: train rows, then
    pseudo-labelled rows of another array, labels typed alike."""
    rng = np.random.default_rng(1)
    train, test = (rng.integers(0, 255, (n, 6, 5, 2), dtype=np.uint8) for n in (9, 7))
    y_train = rng.integers(0, 2, (6, 3)).astype(float) if multilabel else np.arange(6) % 3
    y_extra = rng.integers(0, 2, (4, 3)).astype(float) if multilabel else np.arange(4) % 3
    parts = [PackedImages(train, np.array([8, 1, 3, 0, 5, 2]), y_train),
             PackedImages(test, np.array([6, 0, 2, 4]), y_extra)]
    expected = list(torch.utils.data.DataLoader(torch.utils.data.ConcatDataset(parts),
                                                batch_size=4))
    got = list(BatchLoader(parts, 4))
    assert len(got) == len(expected) == 3
    for (images, labels), (want_images, want_labels) in zip(got, expected, strict=True):
        assert images.shape[1:] == (6, 5, 2) and torch.equal(images, want_images)
        assert labels.dtype == want_labels.dtype and torch.equal(labels, want_labels)
    assert len(BatchLoader(parts, 4, drop_last=True)) == len(list(BatchLoader(parts, 4,
                                                                            drop_last=True)))


def test_batch_loader_shuffles_from_its_generator_and_follows_a_sampler():
    images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1)
    part = [PackedImages(images, np.arange(10), np.arange(10))]

    def labels(loader):
        return torch.cat([y for _, y in loader]).tolist()

    shuffled = [labels(BatchLoader(part, 3, shuffle=True,
                                   generator=torch.Generator().manual_seed(5)))
                for _ in range(2)]
    assert shuffled[0] == shuffled[1] and sorted(shuffled[0]) == list(range(10))
    assert shuffled[0] != list(range(10))
    sampler = torch.utils.data.SubsetRandomSampler([7, 7, 2],
                                                   generator=torch.Generator().manual_seed(0))
    assert sorted(labels(BatchLoader(part, 2, sampler=sampler, shuffle=True))) == [2, 7, 7]
    unlabelled = BatchLoader([PackedImages(images, np.arange(3))], 8)
    assert labels(unlabelled) == [-1, -1, -1]


def test_predict_test_fold_rebuilds_the_model_and_matches_in_job_predictions(tmp_path):
    """A fold's model.pt alone predicts the test images: the same numbers as predicting with
    the trained network in the training process, in packed order, with the model's TTA."""
    inputs = _packed_fold_inputs(tmp_path)
    settings = _settings(hidden=[8], pooling="gem", drop_rate=0.2, ema_decay=0.9)
    outputs = FoldOutputs(*(tmp_path / "a" / n for n in ("model.pt", "oof.parquet",
                                                          "history.csv", "metrics.json")))
    train_fold(settings, SPEC, 1, inputs["train.npy"], inputs["train_index.parquet"],
               inputs["folds.csv"], inputs["manifest.parquet"], outputs)
    summary = predict_test_fold(settings, SPEC, outputs.weights, inputs["test.npy"],
                                inputs["test_index.parquet"], tmp_path / "test.parquet")
    test = pd.read_parquet(tmp_path / "test.parquet")
    assert list(test.columns) == ["id", "p_0", "p_1", "p_2"]
    assert list(test["id"]) == [f"te{i}" for i in range(9)] and summary["n_test"] == 9
    assert np.allclose(test[["p_0", "p_1", "p_2"]].sum(axis=1), 1.0)
    state = torch.load(outputs.weights, weights_only=True)
    model = build_classifier("resnet10t", 3, 1, pooling="gem", dropout=0.2, hidden=[8])
    model.load_state_dict(state["state_dict"])
    images = torch.from_numpy(np.load(inputs["test.npy"])).permute(0, 3, 1, 2)
    with torch.no_grad():
        x = images.float() / 127.5 - 1.0
        expected = (torch.softmax(model.eval()(x), 1) + torch.softmax(model(x.flip(3)), 1)) / 2
    # the reference runs in fp32 on the CPU; on a GPU the job predicts in bf16 autocast
    tolerance = 2e-2 if torch.cuda.is_available() else 1e-5
    assert np.allclose(test[["p_0", "p_1", "p_2"]].to_numpy(), expected.numpy(), atol=tolerance)


def test_predict_test_fold_refuses_a_model_of_another_task(tmp_path):
    inputs = _packed_fold_inputs(tmp_path)
    outputs = FoldOutputs(*(tmp_path / "a" / n for n in ("model.pt", "oof.parquet",
                                                          "history.csv", "metrics.json")))
    train_fold(_settings(epochs=1), SPEC, 1, inputs["train.npy"], inputs["train_index.parquet"],
               inputs["folds.csv"], inputs["manifest.parquet"], outputs)
    four = TaskSpec(task="multiclass", target="label", classes=("0", "1", "2", "3"),
                    metric="accuracy", id_column="id")
    with pytest.raises(PodiumInputError, match="3 outputs but the task has 4"):
        predict_test_fold(_settings(), four, outputs.weights, inputs["test.npy"],
                          inputs["test_index.parquet"], tmp_path / "test.parquet")
    assert not (tmp_path / "test.parquet").exists()


def test_loader_workers_draw_different_augmentations():
    """Each worker holds a copy of the pipeline: without reseeding, worker 0's first image and
    worker 1's first image would get the same noise."""
    augment = build_augmentation(A.to_dict(A.Compose([A.GaussNoise(std_range=(0.2, 0.4),
                                                                    p=1.0)])), seed=0)
    images = np.full((4, 8, 8, 1), 128, dtype=np.uint8)
    dataset = PackedImages(images, np.arange(4), np.zeros(4), augment)

    def first_two(init):
        loader = torch.utils.data.DataLoader(
            dataset, batch_size=1, num_workers=2, worker_init_fn=init,
            generator=torch.Generator().manual_seed(0))
        batches = [b for b, _ in loader]
        return batches[0], batches[1]  # worker 0's first item, worker 1's first item

    a, b = first_two(reseed_worker_augmentation)
    assert not torch.equal(a, b)
    assert torch.equal(first_two(reseed_worker_augmentation)[0], a)  # still reproducible
    a, b = first_two(None)
    assert torch.equal(a, b), "the check has teeth: without reseeding the workers agree"


def test_settings_refuse_segmentation_and_unknown_keys_by_name():
    """A key of a segmentation model (arch, crop, tile) is refused, not dropped; the rest
    take the schema's defaults."""
    settings = TrainSettings.from_config({"backbone": "resnet10t", "epochs": 3})
    assert settings.backbone == "resnet10t" and settings.epochs == 3
    assert settings == TrainSettings(backbone="resnet10t", epochs=3)
    with pytest.raises(PodiumInputError, match=r"models\.m\.crop: applies to segmentation "
                                               r"models only.*models\.m\.arch"):
        TrainSettings.from_config({"backbone": "resnet10t", "crop": None, "arch": "unet"},
                                  name="m")
    with pytest.raises(PodiumInputError, match=r"models\.m\.poolin: not a setting.*pooling"):
        TrainSettings.from_config({"backbone": "resnet10t", "poolin": "avg"}, name="m")
