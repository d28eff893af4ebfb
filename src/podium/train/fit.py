"""The one fold trainer of every task: a model, its optimiser, schedule, loss and loaders,
trained epoch by epoch.

A task plug-in builds the model, the loss and the :class:`TrainingData` and writes the fold's
outputs (``podium.tasks.classify.fit``, ``podium.tasks.segment.fit``); what training does
with them is the same for every task. Every random stream is reseeded from (seed, fold,
epoch) at the start of each epoch (:func:`epoch_seed`), which makes a resumed fold
(:mod:`podium.train.resume`) take the same path as an uninterrupted one.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from podium.schema import schema_field
from podium.train.data import BatchLoader, reseed_worker_augmentation
from podium.train.epochs import NonFiniteLoss
from podium.train.optim import LrSchedule, build_optimizer, set_backbone_frozen
from podium.train.runtime import Runtime

__all__ = ["FitSettings", "FoldTrainer", "LossLog", "NonFiniteLoss", "TrainingData",
           "epoch_seed", "seed_everything"]


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


def seed_everything(seed: int) -> None:
    """Same seed, same config, same CPU: the same predictions."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_seed(settings: FitSettings, fold: int, epoch: int) -> int:
    """The seed of every random stream in one epoch of one fold."""
    return settings.seed * 1_000_003 + fold * 10_007 + epoch


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
