"""Train one model on one fold and write its weights, OOF and test predictions.

The fold's declared outputs are written only after training finishes, so Snakemake never sees
a half-trained fold as done.
"""

from __future__ import annotations

import copy
import logging
import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from podium.errors import PodiumInputError
from podium.metrics import get_metric
from podium.tables import write_csv, write_json, write_parquet
from podium.task import TaskSpec
from podium.train.augment import apply_tta, build_augmentation, check_tta
from podium.train.data import PackedImages, load_packed, normalize
from podium.train.models import build_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainSettings:
    """One entry of the config's ``models`` section."""

    backbone: str
    pretrained: bool = False
    epochs: int = 15
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    patience: int = 5
    drop_rate: float = 0.0
    label_smoothing: float = 0.0
    augment: dict | None = None
    tta: list[str] = field(default_factory=lambda: ["identity"])
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


def seed_everything(seed: int) -> None:
    """Same seed, same config, same CPU: the same predictions."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device() -> torch.device:
    """CUDA when there is a GPU, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _warmup_cosine(total_steps: int, warmup_steps: int):
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


class SmoothedBCEWithLogits(torch.nn.Module):
    """Multilabel loss: binary cross-entropy per class, targets pulled ``smoothing / 2``
    towards 0.5 (label smoothing's two-outcome form)."""

    def __init__(self, smoothing: float = 0.0) -> None:
        super().__init__()
        self.smoothing = smoothing

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        targets = targets * (1.0 - self.smoothing) + 0.5 * self.smoothing
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)


def task_loss(spec: TaskSpec, label_smoothing: float) -> torch.nn.Module:
    """Cross-entropy over classes, or per-class binary cross-entropy for multilabel."""
    if spec.is_multilabel:
        return SmoothedBCEWithLogits(label_smoothing)
    return torch.nn.CrossEntropyLoss(label_smoothing=label_smoothing)


def to_probabilities(logits: torch.Tensor, multilabel: bool) -> torch.Tensor:
    """Softmax over classes, or an independent sigmoid per class for multilabel."""
    return torch.sigmoid(logits) if multilabel else torch.softmax(logits, dim=1)


@torch.no_grad()
def predict_proba(
    model: torch.nn.Module, loader: DataLoader, device: torch.device, tta: list[str],
    amp_dtype: torch.dtype | None = None, multilabel: bool = False,
) -> np.ndarray:
    """Class probabilities, averaged over the TTA views."""
    model.eval()
    out = []
    for images, _ in loader:
        images = normalize(images.to(device, non_blocking=True))
        if device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        views = []
        for name in tta:
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = model(apply_tta(images, name))
            views.append(to_probabilities(logits.float(), multilabel))
        out.append(torch.stack(views).mean(0).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0))


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
) -> dict[str, Any]:
    """Fit on every fold but ``fold``, early-stop on the metric, predict OOF and test."""
    check_tta(settings.tta)
    seed_everything(settings.seed + fold)
    torch.set_num_threads(max(1, threads))
    device = pick_device()
    metric = get_metric(spec.metric)

    manifest = pd.read_parquet(manifest_path, columns=["id", spec.target])
    labels_by_id = dict(zip(manifest["id"], manifest[spec.target], strict=True))
    index = pd.read_parquet(train_index)
    folds = pd.read_csv(folds_csv, dtype={"id": str})
    index = index.merge(folds, on="id", how="left", validate="one_to_one")
    y = spec.encode(index["id"].map(labels_by_id))
    # Images missing from folds.csv were left out by dedup.drop: never trained or validated.
    in_folds = index["fold"].notna().to_numpy()
    is_valid = (index["fold"] == fold).to_numpy()
    train_rows = np.flatnonzero(in_folds & ~is_valid)
    valid_rows = np.flatnonzero(is_valid)

    train_images = load_packed(train_array)
    test_images = load_packed(test_array)
    test_ids = pd.read_parquet(test_index)["id"]
    in_chans = train_images.shape[3]

    model = build_model(settings.backbone, spec.n_classes, in_chans, settings.pretrained,
                        settings.drop_rate).to(device)
    cuda = device.type == "cuda"
    amp_dtype = (torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else
                 torch.float16 if cuda else None)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    augment = build_augmentation(settings.augment, settings.seed + fold)
    loader_args = {"num_workers": max(0, threads - 1) if cuda else 0, "pin_memory": cuda}
    generator = torch.Generator().manual_seed(settings.seed + fold)
    train_loader = DataLoader(
        PackedImages(train_images, train_rows, y[train_rows], augment),
        batch_size=settings.batch_size, shuffle=True,
        drop_last=len(train_rows) > settings.batch_size, generator=generator, **loader_args,
    )

    def eval_loader(array: np.ndarray, rows: np.ndarray) -> DataLoader:
        return DataLoader(PackedImages(array, rows), batch_size=settings.batch_size * 2,
                          **loader_args)

    valid_loader = eval_loader(train_images, valid_rows)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr,
                                  weight_decay=settings.weight_decay)
    steps = settings.epochs * len(train_loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _warmup_cosine(steps, int(settings.warmup_epochs * len(train_loader)))
    )
    scaler = torch.amp.GradScaler(enabled=amp_dtype == torch.float16)
    loss_fn = task_loss(spec, settings.label_smoothing)

    history, best_score, best_epoch, best_state = [], float("nan"), -1, None
    fit_start = time.perf_counter()
    for epoch in range(settings.epochs):
        epoch_start = time.perf_counter()
        model.train()
        total, seen = 0.0, 0
        bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{settings.epochs}", mininterval=10,
                   leave=False)
        for images, targets in bar:
            images = normalize(images.to(device, non_blocking=True))
            if cuda:
                images = images.contiguous(memory_format=torch.channels_last)
            targets = targets.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                loss = loss_fn(model(images), targets)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            total += loss.item() * len(targets)
            seen += len(targets)
        proba = predict_proba(model, valid_loader, device, ["identity"], amp_dtype,
                              spec.is_multilabel)
        score = metric(y[valid_rows], proba)
        row = {
            "epoch": epoch + 1, "train_loss": total / max(1, seen),
            "valid_logloss": get_metric("logloss")(y[valid_rows], proba),
            f"valid_{metric.name}": score, "lr": optimizer.param_groups[0]["lr"],
            "seconds": time.perf_counter() - epoch_start,
        }
        history.append(row)
        log.info("fold %d epoch %d/%d train_loss %.4f valid_%s %.4f (%.1fs)", fold, epoch + 1,
                 settings.epochs, row["train_loss"], metric.name, score, row["seconds"])
        if metric.is_better(score, best_score):
            best_score, best_epoch = score, epoch + 1
            best_state = copy.deepcopy(model.state_dict())
        elif epoch + 1 - best_epoch >= settings.patience:
            log.info("early stop: no better valid_%s for %d epochs", metric.name,
                     settings.patience)
            break
    fit_seconds = time.perf_counter() - fit_start

    if best_state is None:
        raise PodiumInputError(
            f"models.{settings.backbone}: fold {fold} produced no finite validation "
            f"{metric.name} in {len(history)} epochs (see history in the log); lower lr or "
            "check the labels."
        )
    predict_start = time.perf_counter()
    model.load_state_dict(best_state)
    oof = predict_proba(model, valid_loader, device, settings.tta, amp_dtype, spec.is_multilabel)
    test = predict_proba(model, eval_loader(test_images, np.arange(len(test_images))), device,
                         settings.tta, amp_dtype, spec.is_multilabel)
    predict_seconds = time.perf_counter() - predict_start

    columns = spec.prediction_columns
    outputs.weights.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": best_state, "backbone": settings.backbone,
                "num_classes": spec.n_classes, "in_chans": in_chans}, outputs.weights)
    write_parquet(pd.concat([index.loc[valid_rows, ["id"]].reset_index(drop=True),
                             pd.DataFrame(oof, columns=columns)], axis=1), outputs.oof)
    write_parquet(pd.concat([test_ids.reset_index(drop=True),
                             pd.DataFrame(test, columns=columns)], axis=1), outputs.test)
    write_csv(pd.DataFrame(history), outputs.history)
    summary = {
        "fold": fold, "metric": metric.name, "best_epoch": best_epoch,
        "best_valid_score": best_score, "oof_score_tta": metric(y[valid_rows], oof),
        "tta": settings.tta, "n_train": int(len(train_rows)), "n_valid": int(len(valid_rows)),
        "device": str(device), "threads": threads, "fit_seconds": fit_seconds,
        "predict_seconds": predict_seconds,
        "train_images_per_second": len(train_rows) * len(history) / fit_seconds,
    }
    write_json(summary, outputs.metrics)
    log.info("fold %d done: best %s %.4f at epoch %d, OOF with TTA %.4f", fold, metric.name,
             best_score, best_epoch, summary["oof_score_tta"])
    return summary
