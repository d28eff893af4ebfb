"""Train a segmentation model on one fold; predict mask probabilities for OOF and test.

The segmentation counterpart of :mod:`podium.tasks.classify.fit`, built the same way so that
a fold behaves the same under Snakemake: every random stream is reseeded from (seed, fold,
epoch) at the start of each epoch, each completed epoch is saved outside the declared outputs
(see :mod:`podium.train.resume`) so a killed fold resumes to the result of an uninterrupted
one, and the outputs are written only once the fold has finished.

Each mask class is one sigmoid channel (a binary mask is one; several classes may overlap, as
in Understanding Clouds), and packed masks hold the classes as bits (:mod:`.classes`).
Training may run on random crops of the packed images (``crop``) so large images fit a batch;
prediction then covers whole images with overlapping tiles (``tile``) and D4 test-time views,
averaged on the logits (:mod:`podium.tasks.segment.tiles`). Probabilities are stored as float16
``N x K x S x S`` arrays: half the size, and 1e-3 precision is far finer than any threshold
search needs.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import Dataset

from podium.errors import PodiumInputError
from podium.glue import StageJob
from podium.metrics import get_metric
from podium.metrics.masks import MASK_THRESHOLD, pair_dice
from podium.schema import model_key_problems, model_kind, schema_field, unknown_model_keys
from podium.tables import load_packed, write_csv, write_json, write_npy, write_parquet
from podium.task import TaskSpec
from podium.tasks.segment import TASK
from podium.tasks.segment.classes import MAX_CLASSES, unpack_bits
from podium.tasks.segment.losses import build_segmentation_loss
from podium.tasks.segment.models import Segmenter, build_segmenter
from podium.tasks.segment.tiles import predict_tiled
from podium.train.augment import build_augmentation
from podium.train.data import (
    BatchLoader,
    PackedImages,
    fold_rows,
)
from podium.train.epochs import NonFiniteLoss, run_epochs
from podium.train.fit import (
    FitSettings,
    FoldTrainer,
    TrainingData,
    epoch_seed,
    seed_everything,
)
from podium.train.resume import ResumeStore, resume_key
from podium.train.runtime import Runtime
from podium.train.tta import TtaView, build_tta, mean_over_views

if TYPE_CHECKING:
    import albumentations as A

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class SegmentSettings(FitSettings):
    """One segmentation entry of the config's ``models`` section, its ``backbone`` as the
    ``encoder``: the fold trainer's keys (``augment`` moves image and mask together, ``tta``
    takes the D4 views and scales) and the segmenter's own."""

    arch: str
    encoder: str
    crop: int | None = schema_field("models", "crop")  # random crop x crop training patches
    tile: int | None = schema_field("models", "tile")  # overlapping tile x tile prediction

    @classmethod
    def from_config(cls, entry: dict[str, Any], name: str = "<name>") -> SegmentSettings:
        """Settings from a config entry as the schema spells it (``backbone``, ``arch``); a
        classification model's key, an unknown key or a missing arch is refused by name
        rather than ignored."""
        problems = unknown_model_keys(entry, name, model_kind(TASK)) + [
            message for _, message in model_key_problems(entry, name, TASK)]
        if "backbone" not in entry:
            problems.append(f"config key models.{name}.backbone: missing; name a timm model "
                            "as the encoder.")
        if problems:
            raise PodiumInputError(" ".join(problems))
        values = dict(entry)
        settings = cls(encoder=values.pop("backbone"), **values)
        settings.check(name)
        return settings

    def check(self, name: str = "<name>") -> None:
        """Fail on values that would only break mid-training (sizes, counts, TTA names)."""
        for key in ("epochs", "batch_size", "patience"):
            _positive_int(getattr(self, key), f"models.{name}.{key}")
        for key in ("crop", "tile"):
            if getattr(self, key) is not None:
                _positive_int(getattr(self, key), f"models.{name}.{key}",
                              "or leave it unset to use whole images")
        self.views(name)

    def views(self, name: str = "<name>") -> list[TtaView]:
        """The TTA views, each one that the engine can turn back on masks."""
        return build_tta(self.tta, self.tta_scales, f"models.{name}.tta", per_pixel=True)


@dataclass(frozen=True)
class SegmentFoldOutputs:
    """Where a segmentation fold's results go."""

    weights: Path
    oof_probs: Path
    oof_index: Path
    history: Path
    metrics: Path


def _positive_int(value: object, key: str, alternative: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        extra = f", {alternative}" if alternative else ""
        raise PodiumInputError(f"config key {key}: expected a positive integer, got "
                               f"{value!r}; set a whole number >= 1{extra}.")
    return value


class MaskedImages(Dataset):
    """``(image H x W x C, mask H x W)`` uint8 pairs from packed rows, augmented together so
    spatial transforms move the mask with the image."""

    def __init__(self, images: np.ndarray, masks: np.ndarray, rows: np.ndarray,
                 augment: A.Compose | None = None) -> None:
        self.images, self.masks, self.rows, self.augment = images, masks, np.asarray(rows), augment

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = np.array(self.images[self.rows[i]])  # writable copies of the mapped rows
        mask = np.array(self.masks[self.rows[i]])
        if self.augment is not None:
            out = self.augment(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
            if image.ndim == 2:
                image = image[:, :, None]
        return (torch.from_numpy(np.ascontiguousarray(image)),
                torch.from_numpy(np.ascontiguousarray(mask)))


def build_train_pipeline(settings: SegmentSettings, image_size: int, seed: int,
                         name: str, augment: bool = True) -> A.Compose | None:
    """A random ``crop`` (when smaller than the images) followed by the user's augmentations
    (unless ``augment`` is off: the crop alone, which plain epochs keep so that every epoch
    trains at the same size), or None when there is neither. albumentations is imported
    here, as in :mod:`podium.train.augment`: a prediction job never needs it."""
    import albumentations as A

    transforms: list[Any] = []
    if settings.crop is not None:
        if settings.crop > image_size:
            raise PodiumInputError(
                f"config key models.{name}.crop: {settings.crop} is larger than the packed "
                f"images ({image_size} x {image_size}); set a crop <= {image_size} or leave it "
                "unset to train on whole images.")
        if settings.crop < image_size:
            transforms.append(A.RandomCrop(settings.crop, settings.crop))
    user = build_augmentation(settings.augment, seed) if augment else None
    if user is not None:
        transforms.append(user)
    if not transforms:
        return None
    pipeline = A.Compose(transforms)
    pipeline.set_random_seed(seed)
    return pipeline


class EncoderSplit(nn.Module):
    """The encoder as ``backbone`` and every other parameter as ``head``: the attributes
    :func:`~podium.train.optim.split_parameters` splits on, so ``backbone_lr_mult`` scales
    the (pretrained) encoder's rate while the fresh decoder and head learn at ``lr``."""

    def __init__(self, model: Segmenter) -> None:
        super().__init__()
        self.backbone = model.encoder
        encoder_ids = {id(p) for p in model.encoder.parameters()}
        self.head = nn.ParameterList([p for p in model.parameters() if id(p) not in encoder_ids])


def segmenter_trainer(settings: SegmentSettings, images: np.ndarray, masks: np.ndarray,
                      train_rows: np.ndarray, runtime: Runtime, fold: int, name: str,
                      n_classes: int = 1) -> FoldTrainer:
    """The fold trainer of a segmentation model: an smp network with ``n_classes`` sigmoid
    channels, the pixel loss, image and mask pairs cropped and augmented together, the packed
    masks unpacked on the device (class k is bit k), and the encoder as the backbone that
    ``backbone_lr_mult`` and ``freeze_backbone_epochs`` act on."""
    key = f"models.{name}"
    model = runtime.model(build_segmenter(
        settings.arch, settings.encoder, n_classes, images.shape[3], settings.pretrained,
        key=key))
    loss_fn = build_segmentation_loss(settings.loss, n_classes, key=f"{key}.loss",
                                      multilabel=True)
    shifts = torch.arange(n_classes, dtype=torch.uint8,
                          device=runtime.device).view(1, n_classes, 1, 1)

    def unpack(packed: torch.Tensor) -> torch.Tensor:
        return torch.bitwise_and(torch.bitwise_right_shift(packed.unsqueeze(1), shifts),
                                 1).float()

    augment = build_train_pipeline(settings, images.shape[1], settings.seed + fold, name)
    crop_only = build_train_pipeline(settings, images.shape[1], settings.seed + fold, name,
                                     augment=False)
    data = TrainingData([MaskedImages(images, masks, train_rows, augment)], augment, unpack,
                        plain=crop_only)
    return FoldTrainer(settings, model, loss_fn, data, runtime, fold,
                       greater_is_better=True, optimizer_view=EncoderSplit(model))


def _forward(model: nn.Module, runtime: Runtime, tile: int | None,
             batch_size: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Float32 logits of a normalised batch: tiled when ``tile`` is smaller than the images,
    in autocast either way (tiles and views are then blended in float32)."""
    def plain(images: torch.Tensor) -> torch.Tensor:
        with runtime.autocast():
            return model(images).float()

    def forward(images: torch.Tensor) -> torch.Tensor:
        if tile and tile < max(images.shape[2:]):
            return predict_tiled(plain, images, tile, batch_size)
        return plain(images)

    return forward


@torch.no_grad()
def predict_probabilities(model: nn.Module, array: np.ndarray, rows: np.ndarray,
                          runtime: Runtime, settings: SegmentSettings, batch_size: int,
                          views: Sequence[TtaView] | None = None) -> np.ndarray:
    """Float32 ``n x K x H x W`` class probabilities of ``array[rows]``, averaged over
    ``views`` (the settings' TTA when None) on the logits, tiled when ``settings.tile`` is set.
    Batches are gathered straight from the (memory-mapped) array: no decoding, no workers."""
    views = settings.views() if views is None else list(views)
    model.eval()
    rows = np.asarray(rows)
    out: np.ndarray | None = None
    forward = _forward(model, runtime, settings.tile, batch_size)
    loader = BatchLoader([PackedImages(array, rows)], batch_size, pin_memory=runtime.cuda)
    start = 0
    for images, _ in loader:
        logits = mean_over_views(forward, runtime.batch(images), views)
        if out is None:
            out = np.empty((len(rows), logits.shape[1], *array.shape[1:3]), dtype=np.float32)
        out[start:start + len(images)] = torch.sigmoid(logits.float()).cpu().numpy()
        start += len(images)
    if out is None:
        raise PodiumInputError("predict_probabilities: no rows to predict.")
    return out


def _dice(probs: np.ndarray, masks: np.ndarray) -> float:
    """Mean Dice over (image, class) pairs of ``n x K x H x W`` probabilities and packed
    ``n x H x W`` masks (Severstal's and Clouds' metric; per-image Dice for one class)."""
    return pair_dice(probs, unpack_bits(masks, probs.shape[1]))


def _check_inputs(images: np.ndarray, masks: np.ndarray, masks_path: str | Path,
                  n_train: int, n_valid: int, fold: int, folds_csv: str | Path,
                  n_classes: int) -> None:
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) \
            or not 1 <= n_classes <= MAX_CLASSES:
        raise PodiumInputError(f"n_classes must be 1 to {MAX_CLASSES} mask classes, got "
                               f"{n_classes!r}.")
    if masks.shape != images.shape[:3]:
        raise PodiumInputError(
            f"{masks_path}: masks of shape {masks.shape} do not line up with the packed images "
            f"{images.shape} (expected {images.shape[:3]}); rerun preprocessing.")
    if not n_valid or not n_train:
        raise PodiumInputError(
            f"{folds_csv}: fold {fold} has {n_train} training and {n_valid} validation images; "
            "every fold needs both, so check folds.n_folds against the number of images.")


def _resume_store(resume_dir: str | Path | None, settings: SegmentSettings, fold: int,
                  name: str, inputs: list[str | Path], n_classes: int) -> ResumeStore | None:
    if resume_dir is None:
        return None
    job = {"settings": asdict(settings), "task": "segment", "fold": fold, "name": name,
           "n_classes": n_classes}
    return ResumeStore(resume_dir, resume_key(job, inputs))


def train_segment_fold(
    settings: SegmentSettings,
    fold: int,
    train_array: str | Path,
    train_index: str | Path,
    masks_array: str | Path,
    folds_csv: str | Path,
    outputs: SegmentFoldOutputs,
    threads: int = 1,
    resume_dir: str | Path | None = None,
    name: str | None = None,
    n_classes: int = 1,
) -> dict[str, Any]:
    """Fit on every fold but ``fold`` (``n_classes`` sigmoid channels, one per mask class),
    early-stop on the validation Dice (mean over image and class pairs), and write the best
    epoch's weights and OOF probabilities (with the configured TTA and tiles). Test images are
    :func:`predict_segment_test`'s job, so new test images never retrain a model.

    With ``resume_dir`` each completed epoch is saved there and a rerun of the same job
    continues from it; SIGTERM stops at once (exit 143) with the last epoch kept."""
    name = name or settings.encoder
    settings.check(name)
    views = settings.views(name)
    seed_everything(epoch_seed(settings, fold, 0))
    torch.set_num_threads(max(1, threads))
    runtime = Runtime.detect(threads, settings.precision, settings.channels_last,
                             key=f"models.{name}.precision")
    index, train_pos, valid_pos = fold_rows(train_index, folds_csv, fold)
    images, masks = load_packed(train_array), load_packed(masks_array)
    _check_inputs(images, masks, masks_array, len(train_pos), len(valid_pos), fold, folds_csv,
                  n_classes)
    train_rows = index["row"].to_numpy()[train_pos]
    valid_rows = index["row"].to_numpy()[valid_pos]
    valid_masks = np.asarray(masks[valid_rows])
    trainer = segmenter_trainer(settings, images, masks, train_rows, runtime, fold, name,
                                n_classes)
    store = _resume_store(resume_dir, settings, fold, name,
                          [train_array, train_index, masks_array, folds_csv], n_classes)
    eval_batch = settings.batch_size * 2

    def evaluate(epoch: int) -> tuple[float, dict[str, float]]:
        probs = predict_probabilities(trainer.eval_model, images, valid_rows, runtime, settings,
                                      eval_batch, views=[TtaView("identity")])
        if not np.isfinite(probs).all():
            raise NonFiniteLoss(f"validation predictions are NaN after epoch {epoch + 1}")
        score = _dice(probs, valid_masks)
        return score, {"valid_dice": score}

    result = run_epochs(
        trainer, evaluate, epochs=settings.epochs, patience=settings.patience, metric="dice",
        is_better=get_metric("dice").is_better, best_model=lambda: trainer.eval_model, store=store,
        name=name, fold=fold,
        advice=f"Lower models.{name}.lr, or check the images and masks.")
    history, best_state, start_epoch = result.history, result.best_state, result.start_epoch
    best_score, best_epoch = result.best_score, result.best_epoch
    fit_seconds, stopped_early = result.fit_seconds, result.stopped_early

    predict_start = time.perf_counter()
    trainer.eval_model.load_state_dict(best_state)
    oof = predict_probabilities(trainer.eval_model, images, valid_rows, runtime, settings,
                                eval_batch, views)
    predict_seconds = time.perf_counter() - predict_start

    outputs.weights.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": best_state, "settings": asdict(settings),
                "in_chans": int(images.shape[3]), "n_classes": n_classes}, outputs.weights)
    write_npy(oof.astype(np.float16), outputs.oof_probs)
    write_parquet(index.loc[valid_pos, ["id", "row"]].reset_index(drop=True), outputs.oof_index)
    write_csv(pd.DataFrame(history), outputs.history)
    epochs_run = len(history) - start_epoch
    summary = {
        "fold": fold, "metric": "dice", "threshold": MASK_THRESHOLD, "n_classes": n_classes,
        "best_epoch": best_epoch,
        "best_valid_dice": best_score, "oof_dice_tta": _dice(oof, valid_masks),
        "tta": [view.label for view in views], "tile": settings.tile, "crop": settings.crop,
        "n_train": int(len(train_rows)), "n_valid": int(len(valid_rows)),
        "device": str(runtime.device), "precision": runtime.precision,
        "channels_last": runtime.channels_last, "threads": threads,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "resumed_from_epoch": start_epoch, "stopped_early": stopped_early,
        "fit_seconds": fit_seconds, "predict_seconds": predict_seconds,
        "train_images_per_second": len(train_rows) * epochs_run / max(fit_seconds, 1e-9),
    }
    write_json(summary, outputs.metrics)
    if store is not None:
        store.clear()
    log.info("fold %d done: best valid_dice %.4f at epoch %d, OOF with TTA %.4f", fold,
             best_score, best_epoch, summary["oof_dice_tta"])
    return summary


def load_segment_model(weights_path: str | Path, runtime: Runtime,
                       name: str) -> tuple[Segmenter, dict[str, Any]]:
    """The network a training job saved, rebuilt from its own settings, on the device."""
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    saved = state["settings"]
    model = build_segmenter(saved["arch"], saved["encoder"], int(state.get("n_classes", 1)),
                            state["in_chans"], pretrained=False, key=f"models.{name}")
    model.load_state_dict(state["state_dict"])
    return runtime.model(model).eval(), state


def predict_segment_test(
    settings: SegmentSettings, weights_path: str | Path, test_array: str | Path,
    test_index: str | Path, probs_out: str | Path, index_out: str | Path, threads: int = 1,
    name: str | None = None,
) -> dict[str, Any]:
    """Class probabilities of every test image with one fold's model, with the TTA, tiles
    and precision of ``settings``: float16 ``N_test x K x S x S`` in packed order, and the
    ``id, row`` index beside it."""
    name = name or settings.encoder
    views = settings.views(name)
    torch.set_num_threads(max(1, threads))
    runtime = Runtime.detect(threads, settings.precision, settings.channels_last,
                             key=f"models.{name}.precision")
    start = time.perf_counter()
    model, state = load_segment_model(weights_path, runtime, name)
    images = load_packed(test_array)
    if images.shape[3] != state["in_chans"]:
        raise PodiumInputError(
            f"{test_array}: test images have {images.shape[3]} channels but {weights_path} was "
            f"trained on {state['in_chans']}; rerun preprocessing and training together.")
    index = pd.read_parquet(test_index, columns=["id", "row"])
    probs = predict_probabilities(model, images, index["row"].to_numpy(), runtime, settings,
                                  settings.batch_size * 2, views)
    write_npy(probs.astype(np.float16), probs_out)
    write_parquet(index.reset_index(drop=True), index_out)
    seconds = time.perf_counter() - start
    log.info("%s: predicted %d test masks with %d TTA views on %s (%s) in %.1fs", name,
             len(index), len(views), runtime.device, runtime.precision, seconds)
    return {"n_test": int(len(index)), "tta": [view.label for view in views], "tile": settings.tile,
            "seconds": seconds, "device": str(runtime.device)}


def train_segment_job(job: StageJob) -> dict[str, Any]:
    """:func:`train_segment_fold` for one ``train_model`` job of a segmentation task (the
    entry point the segment plug-in registers)."""
    i, o = job.inputs, job.outputs
    return train_segment_fold(
        SegmentSettings.from_config(job.settings, name=job.name), job.fold,
        i["train_array"], i["train_index"], i["masks"], i["folds"],
        SegmentFoldOutputs(*(Path(o[key]) for key in (
            "weights", "oof_probs", "oof_index", "history", "metrics"))),
        threads=job.threads, resume_dir=job.resume_dir, name=job.name,
        n_classes=TaskSpec.load(i["task"]).n_classes,
    )


def predict_segment_job(job: StageJob) -> dict[str, Any]:
    """:func:`predict_segment_test` for one ``predict_test`` job of a segmentation task."""
    i, o = job.inputs, job.outputs
    return predict_segment_test(
        SegmentSettings.from_config(job.settings, name=job.name), i["weights"],
        i["test_array"], i["test_index"], o["probs"], o["index"], threads=job.threads,
        name=job.name,
    )
