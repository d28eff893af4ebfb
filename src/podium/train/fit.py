"""Train one model on one fold and write its weights, OOF and test predictions.

The fold's declared outputs are written only after training finishes, so Snakemake never sees
a half-trained fold as done. Each epoch's state is saved outside the outputs (see
:mod:`podium.train.resume`), so a killed fold continues from its last completed epoch. Every
random stream is reseeded from (seed, fold, epoch) at the start of each epoch, which makes a
resumed fold take the same path as an uninterrupted one.
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from podium.errors import PodiumInputError
from podium.glue import StageJob
from podium.metrics import Metric, auc_defined, get_metric, require_finite
from podium.schema import (
    CLASSIFICATION,
    model_key_problems,
    schema_field,
    unknown_model_keys,
)
from podium.tables import load_packed, write_csv, write_json, write_parquet
from podium.task import TARGET_COLUMN, TaskSpec
from podium.train.augment import build_augmentation
from podium.train.data import (
    BatchLoader,
    PackedImages,
    fold_rows,
    reseed_worker_augmentation,
)
from podium.train.epochs import NonFiniteLoss, run_epochs
from podium.train.heads import build_classifier
from podium.train.losses import build_loss
from podium.train.optim import LrSchedule, build_optimizer, set_backbone_frozen
from podium.train.predict import predict_proba, predict_test_fold
from podium.train.resume import ResumeStore, resume_key
from podium.train.runtime import Runtime
from podium.train.samplers import build_sampler, parse_sampler
from podium.train.tta import TtaView, build_tta, check_merge

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class FitSettings:
    """The keys of a model entry that the one fold trainer reads, for every task: epochs,
    optimiser and schedule, accumulation, clipping, EMA, augmentation, TTA, precision, seed.
    Every default is the schema's (see it for each key), the one source the config check
    fills from; each task's settings add its own keys."""

    pretrained: bool = schema_field("models", "pretrained")
    epochs: int = schema_field("models", "epochs")
    batch_size: int = schema_field("models", "batch_size")
    patience: int = schema_field("models", "patience")
    optimizer: str = schema_field("models", "optimizer")
    lr: float = schema_field("models", "lr")
    weight_decay: float = schema_field("models", "weight_decay")
    momentum: float = schema_field("models", "momentum")
    backbone_lr_mult: float = schema_field("models", "backbone_lr_mult")
    freeze_backbone_epochs: int = schema_field("models", "freeze_backbone_epochs")
    schedule: str = schema_field("models", "schedule")
    warmup_epochs: float = schema_field("models", "warmup_epochs")
    plateau_patience: int = schema_field("models", "plateau_patience")
    plateau_factor: float = schema_field("models", "plateau_factor")
    cycle_epochs: float = schema_field("models", "cycle_epochs")
    accumulate_steps: int = schema_field("models", "accumulate_steps")
    clip_grad_norm: float | None = schema_field("models", "clip_grad_norm")
    ema_decay: float | None = schema_field("models", "ema_decay")
    loss: str | dict | list | None = schema_field("models", "loss")
    augment: dict | None = schema_field("models", "augment")
    augment_after_epochs: int = schema_field("models", "augment_after_epochs")
    tta: list = schema_field("models", "tta")
    tta_scales: list[float] = schema_field("models", "tta_scales")
    precision: str = schema_field("models", "precision")
    channels_last: bool = schema_field("models", "channels_last")
    seed: int = schema_field("models", "seed")


@dataclass(frozen=True, kw_only=True)
class TrainSettings(FitSettings):
    """One classification entry of the config's ``models`` section: the fold trainer's keys
    and the classifier's own (head, sampler, how TTA views merge)."""

    backbone: str
    pooling: str = schema_field("models", "pooling")
    hidden: list[int] = schema_field("models", "hidden")
    drop_rate: float = schema_field("models", "drop_rate")
    sampler: str | dict | None = schema_field("models", "sampler")
    tta_merge: str = schema_field("models", "tta_merge")

    @classmethod
    def from_config(cls, entry: dict[str, Any], name: str = "<name>") -> TrainSettings:
        """The settings of a classification model entry; a segmentation model's key or an
        unknown key is refused by name rather than ignored."""
        problems = unknown_model_keys(entry, name, CLASSIFICATION) + [
            message for _, message in model_key_problems(entry, name)]
        if problems:
            raise PodiumInputError(" ".join(problems))
        return cls(**entry)


@dataclass(frozen=True)
class PseudoLabels:
    """Pseudo-labelled test images for a round-2 fold: the packed test split and the
    ``id, label`` table chosen from round-1 predictions of the same fold."""

    array: str | Path
    index: str | Path
    labels_csv: str | Path

    def load(self, spec: TaskSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(array, rows, encoded labels)``, as FoldTrainer takes further training rows."""
        table = pd.read_csv(self.labels_csv, dtype={"id": str, "label": str},
                            keep_default_na=False)
        row_of = pd.read_parquet(self.index).set_index("id")["row"]
        return (load_packed(self.array), row_of.loc[table["id"]].to_numpy(),
                spec.encode(table["label"]))


@dataclass(frozen=True)
class FoldOutputs:
    """Where a fold's results go."""

    weights: Path
    oof: Path
    history: Path
    metrics: Path


def seed_everything(seed: int) -> None:
    """Same seed, same config, same CPU: the same predictions."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(settings: FitSettings, fold: int, epoch: int) -> int:
    """The seed of every random stream in one epoch of one fold."""
    return settings.seed * 1_000_003 + fold * 10_007 + epoch


def _labels_of(spec: TaskSpec, manifest_path: str | Path, ids: pd.Series) -> np.ndarray:
    manifest = pd.read_parquet(manifest_path, columns=["id", TARGET_COLUMN])
    labels_by_id = dict(zip(manifest["id"], manifest[TARGET_COLUMN], strict=True))
    return spec.encode(ids.map(labels_by_id))


def stopping_metric(spec: TaskSpec, y_valid: np.ndarray, name: str, fold: int) -> Metric:
    """The metric early stopping follows: the competition's, unless it is undefined on the
    fold's validation rows (AUC of a fold holding one class), where log loss stands in, with
    a warning, rather than stopping on NaN."""
    metric = get_metric(spec.metric)
    if metric.name == "auc" and not auc_defined(y_valid, spec.n_classes):
        log.warning("models.%s fold %d: AUC is undefined on the validation rows (one class "
                    "only); early stopping follows logloss. Check the class counts against "
                    "folds.n_folds.", name, fold)
        return get_metric("logloss")
    return metric


LOSS_CHECK_EVERY_CUDA = 32
"""Steps between loss checks on a GPU. Reading a loss back (``.item()``, ``isfinite``) makes
the CPU wait for the card, which then idles while the next batch is prepared; checking every
32 steps keeps the queue full and still names the first bad batch."""


class LossLog:
    """The epoch's losses, kept on the device and checked for NaN/inf in groups."""

    def __init__(self, epoch: int, check_every: int) -> None:
        self.epoch, self.check_every = epoch, check_every
        self.pending: list[torch.Tensor] = []
        self.sizes: list[int] = []
        self.total, self.checked = 0.0, 0

    def add(self, loss: torch.Tensor, size: int) -> None:
        self.pending.append(loss.detach().float() * size)
        self.sizes.append(size)
        if len(self.pending) >= self.check_every:
            self.check()

    def check(self) -> None:
        """Raise NonFiniteLoss naming the first bad batch of those not yet checked."""
        if not self.pending:
            return
        values = torch.stack(self.pending).cpu()
        finite = torch.isfinite(values)
        if not finite.all():
            first = int((~finite).nonzero()[0, 0])
            loss = values[first].item() / self.sizes[first]
            raise NonFiniteLoss(f"the loss is {loss} at epoch {self.epoch + 1}, "
                                f"batch {self.checked + first + 1}")
        self.total += float(values.sum())
        self.checked += len(self.pending)
        self.pending.clear()

    def mean(self) -> float:
        self.check()
        return self.total / max(1, sum(self.sizes))


@dataclass
class TrainingData:
    """What a task trains a fold on, as the one :class:`FoldTrainer` takes it: datasets of
    ``(image, target)`` pairs (train rows, then any further rows such as pseudo-labelled test
    images), each with an ``augment`` attribute the trainer switches off for plain epochs;
    the albumentations pipeline, reseeded each epoch; how a batch's targets reach the device
    as the loss takes them (class indices as they are, bit-packed masks unpacked per class);
    the sampler, if any, drawing from ``generator``. Where every part is a
    :class:`~podium.train.data.PackedImages`, plain epochs gather whole batches instead of
    going image by image through the loader's workers (``gathers_batches``). ``plain`` is
    what plain epochs (before ``augment_after_epochs``) still apply: a segmentation crop,
    so that they train at the crop's size too; None for the images as they are."""

    parts: list[torch.utils.data.Dataset]
    augment: Any | None
    to_targets: Callable[[torch.Tensor], torch.Tensor]
    sampler: torch.utils.data.Sampler | None = None
    generator: torch.Generator = field(default_factory=torch.Generator)
    gathers_batches: bool = False
    plain: Any | None = None


class FoldTrainer:
    """One fold's model, optimiser, schedule, loss and loaders, trained epoch by epoch: the
    one trainer of every task (accumulation, clipping, EMA, AMP with loss scaling, a frozen
    backbone's first epochs, augmentation from a given epoch). A task plug-in builds the
    model, the loss and the :class:`TrainingData`; ``optimizer_view`` is the model as
    :func:`~podium.train.optim.split_parameters` splits it into backbone and head (a
    segmenter's encoder and decoder), the model itself when None."""

    def __init__(self, settings: FitSettings, model: torch.nn.Module, loss_fn: torch.nn.Module,
                 data: TrainingData, runtime: Runtime, fold: int, greater_is_better: bool,
                 optimizer_view: torch.nn.Module | None = None) -> None:
        self.settings, self.runtime, self.fold = settings, runtime, fold
        self.model, self.loss_fn, self.data = model, loss_fn.to(runtime.device), data
        self.augment, self.parts, self.generator = data.augment, data.parts, data.generator
        self.optimizer_view = optimizer_view if optimizer_view is not None else model
        self.dataset = (torch.utils.data.ConcatDataset(self.parts) if len(self.parts) > 1
                        else self.parts[0])
        drop_last = len(self.dataset) > settings.batch_size
        # Augmenting epochs: worker processes augment image by image. Plain epochs: whole
        # batches gathered from the arrays where the task's rows allow it (same order source,
        # same number of steps), else the same loader.
        self.augmenting_loader = DataLoader(
            self.dataset, batch_size=settings.batch_size, shuffle=data.sampler is None,
            sampler=data.sampler, drop_last=drop_last, generator=self.generator,
            worker_init_fn=reseed_worker_augmentation, **runtime.loader_args,
        )
        self.plain_loader = (
            BatchLoader(self.parts, settings.batch_size, sampler=data.sampler, shuffle=True,
                        generator=self.generator, drop_last=drop_last,
                        pin_memory=runtime.cuda)
            if data.gathers_batches else self.augmenting_loader)
        self.optimizer = build_optimizer(self.optimizer_view, settings.optimizer, settings.lr,
                                         settings.weight_decay, settings.backbone_lr_mult,
                                         settings.momentum)
        self.steps_per_epoch = math.ceil(len(self.plain_loader) / settings.accumulate_steps)
        self.schedule = LrSchedule(
            self.optimizer, settings.schedule, settings.epochs, self.steps_per_epoch,
            settings.warmup_epochs, greater_is_better, settings.plateau_patience,
            settings.plateau_factor, settings.cycle_epochs)
        self.scaler = torch.amp.GradScaler(enabled=runtime.amp_dtype == torch.float16)
        self.ema = None
        if settings.ema_decay:
            from timm.utils import ModelEmaV3

            self.ema = ModelEmaV3(self.model, decay=settings.ema_decay)

    @property
    def eval_model(self) -> torch.nn.Module:
        """The EMA weights when EMA is on (what gets validated and saved), else the model."""
        return self.ema.module if self.ema is not None else self.model

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "schedule": self.schedule.state_dict(), "scaler": self.scaler.state_dict(),
                "ema": self.ema.module.state_dict() if self.ema is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None:
            self.ema.module.load_state_dict(state["ema"])

    def train_epoch(self, epoch: int) -> float:
        """One pass over the training rows; returns the mean loss."""
        settings = self.settings
        seed = epoch_seed(settings, self.fold, epoch)
        torch.manual_seed(seed)
        self.generator.manual_seed(seed)
        augmenting = self.augment is not None and epoch >= settings.augment_after_epochs
        pipeline = self.augment if augmenting else self.data.plain
        for part in self.parts:
            part.augment = pipeline
        if pipeline is not None:
            pipeline.set_random_seed(seed)
        loader = self.plain_loader if pipeline is None else self.augmenting_loader
        set_backbone_frozen(self.optimizer_view, epoch < settings.freeze_backbone_epochs)
        self.model.train()
        bar = tqdm(loader, desc=f"fold {self.fold} epoch {epoch + 1}/{settings.epochs}",
                   mininterval=10, leave=False)
        self.optimizer.zero_grad(set_to_none=True)
        losses = LossLog(epoch, check_every=LOSS_CHECK_EVERY_CUDA if self.runtime.cuda else 1)
        for step, (images, targets) in enumerate(bar):
            images = self.runtime.batch(images)
            targets = self.data.to_targets(targets.to(self.runtime.device, non_blocking=True))
            with self.runtime.autocast():
                loss = self.loss_fn(self.model(images), targets)
            losses.add(loss, len(targets))
            self.scaler.scale(loss / settings.accumulate_steps).backward()
            if (step + 1) % settings.accumulate_steps == 0 or step + 1 == len(loader):
                self._optimizer_step()
        return losses.mean()

    def _optimizer_step(self) -> None:
        if self.settings.clip_grad_norm:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.clip_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.schedule.after_step()
        if self.ema is not None:
            self.ema.update(self.model)


def classifier_trainer(
    settings: TrainSettings, spec: TaskSpec, metric: Metric, train_images: np.ndarray,
    train_rows: np.ndarray, y_train: np.ndarray, in_chans: int, runtime: Runtime, fold: int,
    name: str, row_weights: np.ndarray | None = None,
    extra: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> FoldTrainer:
    """The fold trainer of a classification model: a timm classifier, the task's loss, the
    train rows (and ``extra``, ``(array, rows, labels)`` of pseudo-labelled test images,
    trained on like the train rows and never validated), drawn by the configured sampler or
    by ``row_weights`` (adversarial validation's)."""
    model = runtime.model(build_classifier(
        settings.backbone, spec.n_outputs, in_chans, settings.pretrained,
        pooling=settings.pooling, dropout=settings.drop_rate, hidden=list(settings.hidden),
    ))
    loss_fn = build_loss(settings.loss, spec, key=f"models.{name}.loss")
    augment = build_augmentation(settings.augment, settings.seed + fold)
    parts = [PackedImages(train_images, train_rows, y_train, augment)]
    if extra is not None and len(extra[1]):
        parts.append(PackedImages(*extra, augment))
        y_train = np.concatenate([y_train, extra[2]])
        if row_weights is not None:
            row_weights = np.concatenate([row_weights, np.ones(len(extra[1]))])
    generator = torch.Generator()
    sampler_name, params = parse_sampler(settings.sampler, f"models.{name}.sampler")
    if row_weights is not None and sampler_name not in (None, "random"):
        raise PodiumInputError(
            f"config key models.{name}.sampler: {sampler_name} cannot be combined with "
            "adversarial.weight_training; turn one of them off.")
    sampler = (
        torch.utils.data.WeightedRandomSampler(row_weights, len(row_weights),
                                               generator=generator)
        if row_weights is not None
        else build_sampler(sampler_name, y_train, generator, **params))
    data = TrainingData(parts, augment, to_targets=lambda targets: targets, sampler=sampler,
                        generator=generator, gathers_batches=True)
    return FoldTrainer(settings, model, loss_fn, data, runtime, fold,
                       metric.greater_is_better)


def train_fold(
    settings: TrainSettings,
    spec: TaskSpec,
    fold: int,
    train_array: str | Path,
    train_index: str | Path,
    folds_csv: str | Path,
    manifest_path: str | Path,
    outputs: FoldOutputs,
    threads: int = 1,
    resume_dir: str | Path | None = None,
    name: str | None = None,
    weights_csv: str | Path | None = None,
    pseudo: PseudoLabels | None = None,
) -> dict[str, Any]:
    """Fit on every fold but ``fold``, early-stop on the metric, predict OOF (test images are
    predicted by :func:`podium.train.predict.predict_test_fold`, a job of its own, so new test
    images never retrain a model).

    With ``resume_dir`` each completed epoch is saved there and a rerun of the same job
    continues from it; the state is removed once the outputs are written. ``weights_csv``
    (``id, weight``, from adversarial validation) samples train rows by those weights;
    ``pseudo`` adds pseudo-labelled test images to the training rows."""
    name = name or settings.backbone
    views = build_tta(settings.tta, settings.tta_scales)
    check_merge(settings.tta_merge)
    if settings.accumulate_steps < 1:
        raise PodiumInputError(f"config key models.{name}.accumulate_steps must be >= 1.")
    seed_everything(epoch_seed(settings, fold, 0))
    torch.set_num_threads(max(1, threads))
    runtime = Runtime.detect(threads, settings.precision, settings.channels_last,
                             key=f"models.{name}.precision")
    space = spec.label_space
    secondary = get_metric("rmse" if spec.predicts_value else "logloss")  # logged each epoch

    # packed rows are in index order, so index positions are array rows
    index, train_rows, valid_rows = fold_rows(train_index, folds_csv, fold)
    y = _labels_of(spec, manifest_path, index["id"])
    metric = stopping_metric(spec, y[valid_rows], name, fold)

    train_images = load_packed(train_array)
    in_chans = train_images.shape[3]
    row_weights = None
    if weights_csv is not None:
        weight_of = pd.read_csv(weights_csv, dtype={"id": str}).set_index("id")["weight"]
        row_weights = index["id"].iloc[train_rows].map(weight_of).fillna(1.0).to_numpy()
        log.info("sampling train rows by adversarial weights (from %.2f to %.2f)",
                 row_weights.min(), row_weights.max())
    extra = pseudo.load(spec) if pseudo is not None else None
    if extra is not None:
        log.info("training on %d pseudo-labelled test images besides %d train images",
                 len(extra[1]), len(train_rows))
    trainer = classifier_trainer(settings, spec, metric, train_images, train_rows,
                                 y[train_rows], in_chans, runtime, fold, name, row_weights,
                                 extra)
    eval_batch = settings.batch_size * 2
    store = None
    if resume_dir is not None:
        store = ResumeStore(resume_dir, resume_key(
            {"settings": asdict(settings), "task": asdict(spec), "fold": fold, "name": name},
            [p for p in (train_array, train_index, folds_csv, manifest_path, weights_csv,
                         pseudo.labels_csv if pseudo is not None else None) if p is not None]))

    def evaluate(epoch: int) -> tuple[float, dict[str, float]]:
        proba = predict_proba(trainer.eval_model, train_images, valid_rows, runtime,
                              [TtaView("identity")], eval_batch, spec.output_kind)
        if not np.isfinite(proba).all():
            raise NonFiniteLoss(f"validation predictions are NaN after epoch {epoch + 1}")
        score = metric(y[valid_rows], proba, space)
        return score, {f"valid_{secondary.name}": secondary(y[valid_rows], proba, space),
                       f"valid_{metric.name}": score}

    result = run_epochs(
        trainer, evaluate, epochs=settings.epochs, patience=settings.patience,
        metric=metric.name, is_better=metric.is_better, best_model=lambda: trainer.eval_model,
        store=store, name=name, fold=fold,
        advice="Lower lr, set clip_grad_norm, or check the images and labels.",
        row_extras=lambda epoch: {"backbone_frozen": epoch < settings.freeze_backbone_epochs})
    history, best_state, start_epoch = result.history, result.best_state, result.start_epoch
    best_score, best_epoch, fit_seconds = result.best_score, result.best_epoch, result.fit_seconds

    predict_start = time.perf_counter()
    model = trainer.eval_model
    model.load_state_dict(best_state)
    oof = predict_proba(model, train_images, valid_rows, runtime, views, eval_batch,
                        spec.output_kind, settings.tta_merge)
    predict_seconds = time.perf_counter() - predict_start

    require_finite(oof, f"models.{name} fold {fold}: OOF")
    columns = spec.prediction_columns
    outputs.weights.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": best_state, "settings": asdict(settings),
                "num_outputs": spec.n_outputs, "in_chans": in_chans}, outputs.weights)
    write_parquet(pd.concat([index.loc[valid_rows, ["id"]].reset_index(drop=True),
                             pd.DataFrame(oof, columns=columns)], axis=1), outputs.oof)
    write_csv(pd.DataFrame(history), outputs.history)
    epochs_run = len(history) - start_epoch
    summary = {
        "fold": fold, "metric": metric.name, "best_epoch": best_epoch,
        "best_valid_score": best_score, "oof_score_tta": metric(y[valid_rows], oof, space),
        "tta": [v.label for v in views], "tta_merge": settings.tta_merge,
        "n_train": int(len(train_rows)), "n_valid": int(len(valid_rows)),
        "n_pseudo": int(len(extra[1])) if extra is not None else 0,
        "device": str(runtime.device), "precision": runtime.precision,
        "channels_last": runtime.channels_last, "threads": threads,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "resumed_from_epoch": start_epoch, "fit_seconds": fit_seconds,
        "predict_seconds": predict_seconds,
        "train_images_per_second": len(train_rows) * epochs_run / max(fit_seconds, 1e-9),
    }
    write_json(summary, outputs.metrics)
    if store is not None:
        store.clear()
    log.info("fold %d done: best %s %.4f at epoch %d, OOF with TTA %.4f", fold, metric.name,
             best_score, best_epoch, summary["oof_score_tta"])
    return summary


def train_fold_job(job: StageJob) -> dict[str, Any]:
    """:func:`train_fold` for one ``train_model`` job of a classification task (the entry
    point the classify plug-in registers): round-2 models also read their fold's pseudo
    labels, and weighted training adversarial validation's weights."""
    i, o = job.inputs, job.outputs
    pseudo = i.get("pseudo")
    return train_fold(
        TrainSettings.from_config(job.settings), TaskSpec.load(i["task"]), job.fold,
        i["train_array"], i["train_index"], i["folds"], i["manifest"],
        FoldOutputs(*(Path(o[key]) for key in ("weights", "oof", "history", "metrics"))),
        threads=job.threads, resume_dir=job.resume_dir, name=job.name,
        weights_csv=i.get("weights"),
        pseudo=PseudoLabels(i["test_array"], i["test_index"], pseudo) if pseudo else None,
    )


def predict_test_job(job: StageJob) -> dict[str, Any]:
    """:func:`~podium.train.predict.predict_test_fold` for one ``predict_test`` job of a
    classification task."""
    i = job.inputs
    return predict_test_fold(
        TrainSettings.from_config(job.settings), TaskSpec.load(i["task"]), i["weights"],
        i["test_array"], i["test_index"], job.outputs["test"], threads=job.threads,
        name=job.name,
    )
