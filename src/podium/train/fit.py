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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from podium.errors import PodiumInputError
from podium.metrics import Metric, get_metric
from podium.tables import write_csv, write_json, write_parquet
from podium.task import TaskSpec
from podium.train.augment import build_augmentation
from podium.train.data import PackedImages, load_packed, normalize
from podium.train.heads import build_classifier
from podium.train.losses import build_loss
from podium.train.optim import LrSchedule, build_optimizer, set_backbone_frozen
from podium.train.resume import ResumeStore, TrainingInterrupted, resume_key, stop_on_sigterm
from podium.train.samplers import build_sampler
from podium.train.tta import TtaView, build_tta, check_merge, merge_views

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    """One entry of the config's ``models`` section (see the schema for each key)."""

    backbone: str
    pretrained: bool = False
    pooling: str = "avg"
    hidden: list[int] = field(default_factory=list)
    drop_rate: float = 0.0
    epochs: int = 15
    batch_size: int = 64
    patience: int = 5
    optimizer: str = "adamw"
    lr: float = 3e-3
    weight_decay: float = 0.05
    momentum: float = 0.9
    backbone_lr_mult: float = 1.0
    freeze_backbone_epochs: int = 0
    schedule: str = "cosine"
    warmup_epochs: float = 1.0
    plateau_patience: int = 2
    plateau_factor: float = 0.5
    cycle_epochs: float = 2.0
    accumulate_steps: int = 1
    clip_grad_norm: float | None = None
    ema_decay: float | None = None
    loss: str | dict | list | None = None
    sampler: str | dict | None = None
    augment: dict | None = None
    augment_after_epochs: int = 0
    tta: list = field(default_factory=lambda: ["identity"])
    tta_scales: list[float] = field(default_factory=lambda: [1.0])
    tta_merge: str = "mean"
    seed: int = 0

    @classmethod
    def from_config(cls, entry: dict[str, Any]) -> TrainSettings:
        return cls(**entry)


@dataclass(frozen=True)
class FoldOutputs:
    """Where a fold's results go."""

    weights: Path
    oof: Path
    test: Path
    history: Path
    metrics: Path


class NonFiniteLoss(Exception):
    """The training loss became NaN or infinite."""


def seed_everything(seed: int) -> None:
    """Same seed, same config, same CPU: the same predictions."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(settings: TrainSettings, fold: int, epoch: int) -> int:
    """The seed of every random stream in one epoch of one fold."""
    return settings.seed * 1_000_003 + fold * 10_007 + epoch


def pick_device() -> torch.device:
    """CUDA when there is a GPU (the one podium pinned this job to), else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def to_predictions(logits: torch.Tensor, output_kind: str) -> torch.Tensor:
    """Softmax over classes, an independent sigmoid per class for multilabel, or the value
    itself for regression and ordinal targets."""
    if output_kind == "value":
        return logits
    return torch.sigmoid(logits) if output_kind == "sigmoid" else torch.softmax(logits, dim=1)


@dataclass
class Runtime:
    """The device and precision a fold runs with."""

    device: torch.device
    amp_dtype: torch.dtype | None
    loader_args: dict

    @classmethod
    def detect(cls, threads: int) -> Runtime:
        device = pick_device()
        cuda = device.type == "cuda"
        amp = (torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else
               torch.float16 if cuda else None)
        return cls(device, amp, {"num_workers": max(0, threads - 1) if cuda else 0,
                                 "pin_memory": cuda})

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def batch(self, images: torch.Tensor) -> torch.Tensor:
        """Transfer, scale to [-1, 1] on the device, channels_last on CUDA."""
        images = normalize(images.to(self.device, non_blocking=True))
        return images.contiguous(memory_format=torch.channels_last) if self.cuda else images


@torch.no_grad()
def predict_proba(
    model: torch.nn.Module, array: np.ndarray, rows: np.ndarray, runtime: Runtime,
    views: list[TtaView], batch_size: int, output_kind: str, merge: str = "mean",
) -> np.ndarray:
    """Class probabilities (or values) of ``array[rows]``, merged over the TTA views. Named
    views run on the device per batch; albumentations views get their own pass through the
    loader."""
    model.eval()
    per_view = []
    for view in views:
        augment = build_augmentation(view.pipeline, 0) if view.pipeline else None
        loader = DataLoader(PackedImages(array, rows, augment=augment), batch_size=batch_size,
                            **runtime.loader_args)
        out = []
        for images, _ in loader:
            with torch.autocast(runtime.device.type, dtype=runtime.amp_dtype,
                                enabled=runtime.amp_dtype is not None):
                logits = model(view.apply(runtime.batch(images)))
            out.append(to_predictions(logits.float(), output_kind).cpu())
        per_view.append(torch.cat(out) if out else torch.zeros(0))
    if not len(rows):
        return np.zeros((0, 0))
    return merge_views(per_view, merge, output_kind).numpy()


def _labels_of(spec: TaskSpec, manifest_path: str | Path, ids: pd.Series) -> np.ndarray:
    manifest = pd.read_parquet(manifest_path, columns=["id", spec.target])
    labels_by_id = dict(zip(manifest["id"], manifest[spec.target], strict=True))
    return spec.encode(ids.map(labels_by_id))


def _cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _sampler_config(sampler: str | dict | None) -> tuple[str | None, dict]:
    if isinstance(sampler, dict):
        return sampler.get("name"), dict(sampler.get("params") or {})
    return sampler, {}


class FoldTrainer:
    """One fold's model, optimiser, schedule, loss and loaders, trained epoch by epoch."""

    def __init__(self, settings: TrainSettings, spec: TaskSpec, metric: Metric,
                 train_images: np.ndarray, train_rows: np.ndarray, y_train: np.ndarray,
                 in_chans: int, runtime: Runtime, fold: int, name: str,
                 row_weights: np.ndarray | None = None,
                 extra: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> None:
        """``extra`` is ``(array, rows, labels)`` of further training images (pseudo-labelled
        test images), trained on like the train rows and never validated."""
        self.settings, self.spec, self.metric = settings, spec, metric
        self.runtime, self.fold = runtime, fold
        self.model = build_classifier(
            settings.backbone, spec.n_outputs, in_chans, settings.pretrained,
            pooling=settings.pooling, dropout=settings.drop_rate, hidden=list(settings.hidden),
        ).to(runtime.device)
        if runtime.cuda:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.loss_fn = build_loss(settings.loss, spec, key=f"models.{name}.loss").to(
            runtime.device)
        self.augment = build_augmentation(settings.augment, settings.seed + fold)
        self.parts = [PackedImages(train_images, train_rows, y_train, self.augment)]
        if extra is not None and len(extra[1]):
            self.parts.append(PackedImages(*extra, self.augment))
            y_train = np.concatenate([y_train, extra[2]])
            if row_weights is not None:
                row_weights = np.concatenate([row_weights, np.ones(len(extra[1]))])
        self.dataset = (torch.utils.data.ConcatDataset(self.parts) if len(self.parts) > 1
                        else self.parts[0])
        self.generator = torch.Generator()
        sampler_name, params = _sampler_config(settings.sampler)
        if row_weights is not None and sampler_name not in (None, "random"):
            raise PodiumInputError(
                f"config key models.{name}.sampler: {sampler_name} cannot be combined with "
                "adversarial.weight_training; turn one of them off.")
        self.sampler = (
            torch.utils.data.WeightedRandomSampler(row_weights, len(row_weights),
                                                   generator=self.generator)
            if row_weights is not None
            else build_sampler(sampler_name, y_train, self.generator, **params))
        self.loader = DataLoader(
            self.dataset, batch_size=settings.batch_size, shuffle=self.sampler is None,
            sampler=self.sampler, drop_last=len(self.dataset) > settings.batch_size,
            generator=self.generator, **runtime.loader_args,
        )
        self.optimizer = build_optimizer(self.model, settings.optimizer, settings.lr,
                                         settings.weight_decay, settings.backbone_lr_mult,
                                         settings.momentum)
        self.steps_per_epoch = math.ceil(len(self.loader) / settings.accumulate_steps)
        self.schedule = LrSchedule(
            self.optimizer, settings.schedule, settings.epochs, self.steps_per_epoch,
            settings.warmup_epochs, metric.greater_is_better, settings.plateau_patience,
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
        for part in self.parts:
            part.augment = self.augment if augmenting else None
        if augmenting:
            self.augment.set_random_seed(seed)
        set_backbone_frozen(self.model, epoch < settings.freeze_backbone_epochs)
        self.model.train()
        total, seen = 0.0, 0
        bar = tqdm(self.loader, desc=f"fold {self.fold} epoch {epoch + 1}/{settings.epochs}",
                   mininterval=10, leave=False)
        self.optimizer.zero_grad(set_to_none=True)
        for step, (images, targets) in enumerate(bar):
            images = self.runtime.batch(images)
            targets = targets.to(self.runtime.device, non_blocking=True)
            with torch.autocast(self.runtime.device.type, dtype=self.runtime.amp_dtype,
                                enabled=self.runtime.amp_dtype is not None):
                loss = self.loss_fn(self.model(images), targets)
            if not torch.isfinite(loss):
                raise NonFiniteLoss(f"the loss is {loss.item()} at epoch {epoch + 1}, "
                                    f"batch {step + 1}")
            self.scaler.scale(loss / settings.accumulate_steps).backward()
            if (step + 1) % settings.accumulate_steps == 0 or step + 1 == len(self.loader):
                self._optimizer_step()
            total += loss.item() * len(targets)
            seen += len(targets)
        return total / max(1, seen)

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


def train_fold(
    settings: TrainSettings,
    spec: TaskSpec,
    fold: int,
    train_array: str | Path,
    train_index: str | Path,
    test_array: str | Path,
    test_index: str | Path,
    folds_csv: str | Path,
    manifest_path: str | Path,
    outputs: FoldOutputs,
    threads: int = 1,
    resume_dir: str | Path | None = None,
    name: str | None = None,
    weights_csv: str | Path | None = None,
    pseudo_csv: str | Path | None = None,
) -> dict[str, Any]:
    """Fit on every fold but ``fold``, early-stop on the metric, predict OOF and test.

    With ``resume_dir`` each completed epoch is saved there and a rerun of the same job
    continues from it; the state is removed once the outputs are written. ``weights_csv``
    (``id, weight``, from adversarial validation) samples train rows by those weights;
    ``pseudo_csv`` (``id, label``) adds pseudo-labelled test images to the training rows."""
    name = name or settings.backbone
    views = build_tta(settings.tta, settings.tta_scales)
    check_merge(settings.tta_merge)
    if settings.accumulate_steps < 1:
        raise PodiumInputError(f"config key models.{name}.accumulate_steps must be >= 1.")
    seed_everything(epoch_seed(settings, fold, 0))
    torch.set_num_threads(max(1, threads))
    runtime = Runtime.detect(threads)
    metric = get_metric(spec.metric)
    secondary = get_metric("rmse" if spec.predicts_value else "logloss")  # logged each epoch

    index = pd.read_parquet(train_index)
    folds = pd.read_csv(folds_csv, dtype={"id": str})
    index = index.merge(folds, on="id", how="left", validate="one_to_one")
    y = _labels_of(spec, manifest_path, index["id"])
    # Images missing from folds.csv were left out by dedup.drop: never trained or validated.
    in_folds = index["fold"].notna().to_numpy()
    is_valid = (index["fold"] == fold).to_numpy()
    train_rows = np.flatnonzero(in_folds & ~is_valid)
    valid_rows = np.flatnonzero(is_valid)

    train_images = load_packed(train_array)
    test_images = load_packed(test_array)
    test_ids = pd.read_parquet(test_index)["id"]
    in_chans = train_images.shape[3]
    row_weights = None
    if weights_csv is not None:
        weight_of = pd.read_csv(weights_csv, dtype={"id": str}).set_index("id")["weight"]
        row_weights = index["id"].iloc[train_rows].map(weight_of).fillna(1.0).to_numpy()
        log.info("sampling train rows by adversarial weights (from %.2f to %.2f)",
                 row_weights.min(), row_weights.max())
    extra = None
    if pseudo_csv is not None:
        pseudo = pd.read_csv(pseudo_csv, dtype={"id": str, "label": str},
                             keep_default_na=False)
        test_row = pd.read_parquet(test_index).set_index("id")["row"]
        extra = (test_images, test_row.loc[pseudo["id"]].to_numpy(), spec.encode(pseudo["label"]))
        log.info("training on %d pseudo-labelled test images besides %d train images",
                 len(pseudo), len(train_rows))
    trainer = FoldTrainer(settings, spec, metric, train_images, train_rows, y[train_rows],
                          in_chans, runtime, fold, name, row_weights, extra)
    eval_batch = settings.batch_size * 2
    store = None
    if resume_dir is not None:
        store = ResumeStore(resume_dir, resume_key(
            {"settings": asdict(settings), "task": asdict(spec), "fold": fold, "name": name},
            [p for p in (train_array, train_index, folds_csv, manifest_path, weights_csv,
                         pseudo_csv) if p is not None]))

    history: list[dict] = []
    best_score, best_epoch, best_state = float("nan"), -1, None
    start_epoch = 0
    saved = store.load() if store is not None else None
    if saved is not None:
        trainer.load_state_dict(saved["trainer"])
        history, best_score = saved["history"], saved["best_score"]
        best_epoch, best_state = saved["best_epoch"], saved["best_state"]
        start_epoch = saved["epochs_done"]
        log.info("resuming %s fold %d from epoch %d of %d (state %s)", name, fold,
                 start_epoch, settings.epochs, store.path)

    fit_start = time.perf_counter()
    stopped_early = saved is not None and saved.get("stopped_early", False)
    try:
        with stop_on_sigterm():
            for epoch in range(start_epoch, settings.epochs):
                if stopped_early:
                    break
                epoch_start = time.perf_counter()
                train_loss = trainer.train_epoch(epoch)
                proba = predict_proba(trainer.eval_model, train_images, valid_rows, runtime,
                                      [TtaView("identity")], eval_batch, spec.output_kind)
                if not np.isfinite(proba).all():
                    raise NonFiniteLoss(f"validation predictions are NaN after epoch {epoch + 1}")
                score = metric(y[valid_rows], proba)
                trainer.schedule.after_epoch(score)
                row = {
                    "epoch": epoch + 1, "train_loss": train_loss,
                    f"valid_{secondary.name}": secondary(y[valid_rows], proba),
                    f"valid_{metric.name}": score,
                    "lr": trainer.optimizer.param_groups[-1]["lr"],
                    "backbone_frozen": epoch < settings.freeze_backbone_epochs,
                    "seconds": time.perf_counter() - epoch_start,
                }
                history.append(row)
                log.info("fold %d epoch %d/%d train_loss %.4f valid_%s %.4f lr %.2e (%.1fs)",
                         fold, epoch + 1, settings.epochs, train_loss, metric.name, score,
                         row["lr"], row["seconds"])
                if metric.is_better(score, best_score):
                    best_score, best_epoch = score, epoch + 1
                    best_state = _cpu_state(trainer.eval_model)
                elif epoch + 1 - best_epoch >= settings.patience:
                    log.info("early stop: no better valid_%s for %d epochs", metric.name,
                             settings.patience)
                    stopped_early = True
                if store is not None:
                    store.save({"trainer": trainer.state_dict(), "history": history,
                                "best_score": best_score, "best_epoch": best_epoch,
                                "best_state": best_state, "epochs_done": epoch + 1,
                                "stopped_early": stopped_early})
    except NonFiniteLoss as err:
        kept = (f"the state after epoch {len(history)} is kept in {store.path}"
                if store is not None and history else "no epoch had completed")
        raise PodiumInputError(
            f"models.{name} fold {fold}: training stopped, {err}; {kept}. Lower lr, set "
            "clip_grad_norm, or check the images and labels."
        ) from None
    except TrainingInterrupted:
        where = (f"epoch {len(history)} is saved in {store.path}; rerun to continue"
                 if store is not None else "no resume folder was given")
        log.warning("%s fold %d interrupted by SIGTERM: %s", name, fold, where)
        raise SystemExit(143) from None
    fit_seconds = time.perf_counter() - fit_start

    if best_state is None:
        raise PodiumInputError(
            f"models.{name}: fold {fold} produced no finite validation {metric.name} in "
            f"{len(history)} epochs (see history in the log); lower lr or check the labels."
        )
    predict_start = time.perf_counter()
    model = trainer.eval_model
    model.load_state_dict(best_state)
    oof = predict_proba(model, train_images, valid_rows, runtime, views, eval_batch,
                        spec.output_kind, settings.tta_merge)
    test = predict_proba(model, test_images, np.arange(len(test_images)), runtime, views,
                         eval_batch, spec.output_kind, settings.tta_merge)
    predict_seconds = time.perf_counter() - predict_start

    columns = spec.prediction_columns
    outputs.weights.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": best_state, "settings": asdict(settings),
                "num_outputs": spec.n_outputs, "in_chans": in_chans}, outputs.weights)
    write_parquet(pd.concat([index.loc[valid_rows, ["id"]].reset_index(drop=True),
                             pd.DataFrame(oof, columns=columns)], axis=1), outputs.oof)
    write_parquet(pd.concat([test_ids.reset_index(drop=True),
                             pd.DataFrame(test, columns=columns)], axis=1), outputs.test)
    write_csv(pd.DataFrame(history), outputs.history)
    epochs_run = len(history) - start_epoch
    summary = {
        "fold": fold, "metric": metric.name, "best_epoch": best_epoch,
        "best_valid_score": best_score, "oof_score_tta": metric(y[valid_rows], oof),
        "tta": [v.name for v in views], "tta_merge": settings.tta_merge,
        "n_train": int(len(train_rows)), "n_valid": int(len(valid_rows)),
        "n_pseudo": int(len(extra[1])) if extra is not None else 0,
        "device": str(runtime.device), "amp": str(runtime.amp_dtype), "threads": threads,
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

