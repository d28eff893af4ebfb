"""Optimisers and learning-rate schedules from config, with differential learning rates.

Winning recipes give the pretrained backbone a smaller learning rate than the fresh head,
freeze the backbone for the first epochs, and pick the schedule per competition (cosine with
warmup, OneCycle, plateau, cyclic). Everything here is looked up by its config name and keeps
its state in ``state_dict`` so a killed fold resumes exactly where it stopped.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from podium.errors import PodiumInputError, did_you_mean

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "onecycle", "plateau", "cyclic", "constant")


def _unknown(kind: str, name: str, known: tuple[str, ...], key: str) -> PodiumInputError:
    hint = did_you_mean(name, known)
    return PodiumInputError(
        f"config key models.<name>.{key}: unknown {kind} {name!r}.{hint} Known: "
        f"{', '.join(known)}."
    )


def split_parameters(model: torch.nn.Module) -> tuple[list, list]:
    """(backbone, head) parameters: a model with ``.backbone`` and ``.head`` splits there;
    any other timm model splits at its classifier (``get_classifier``)."""
    if hasattr(model, "backbone") and hasattr(model, "head"):
        return list(model.backbone.parameters()), list(model.head.parameters())
    head = model.get_classifier() if hasattr(model, "get_classifier") else None
    head_ids = {id(p) for p in head.parameters()} if isinstance(head, torch.nn.Module) else set()
    backbone = [p for p in model.parameters() if id(p) not in head_ids]
    return backbone, [p for p in model.parameters() if id(p) in head_ids]


def _decay_groups(params: list, lr: float, weight_decay: float, part: str) -> list[dict]:
    """No weight decay on biases and norm weights (1-D tensors), as timm's recipes do."""
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    return [group for group in (
        {"params": decay, "lr": lr, "weight_decay": weight_decay, "part": part},
        {"params": no_decay, "lr": lr, "weight_decay": 0.0, "part": part},
    ) if group["params"]]


def build_optimizer(
    model: torch.nn.Module, name: str, lr: float, weight_decay: float,
    backbone_lr_mult: float = 1.0, momentum: float = 0.9,
) -> torch.optim.Optimizer:
    """AdamW or SGD (Nesterov momentum) with the backbone at ``lr * backbone_lr_mult``."""
    if name not in OPTIMIZERS:
        raise _unknown("optimizer", name, OPTIMIZERS, "optimizer")
    backbone, head = split_parameters(model)
    groups = (_decay_groups(backbone, lr * backbone_lr_mult, weight_decay, "backbone")
              + _decay_groups(head, lr, weight_decay, "head"))
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, nesterov=momentum > 0)
    return torch.optim.AdamW(groups, lr=lr)


def set_backbone_frozen(model: torch.nn.Module, frozen: bool) -> None:
    """Stop (or restart) gradients into the backbone, so a fresh head can settle first."""
    backbone, _ = split_parameters(model)
    for parameter in backbone:
        parameter.requires_grad_(not frozen)


def _warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _warmup_constant(warmup_steps: int) -> Callable[[int], float]:
    return lambda step: min(1.0, (step + 1) / max(1, warmup_steps))


class LrSchedule:
    """One interface over per-step and per-epoch schedulers: call ``after_step`` after each
    optimiser step and ``after_epoch`` with the validation score after each epoch."""

    def __init__(
        self, optimizer: torch.optim.Optimizer, name: str, epochs: int, steps_per_epoch: int,
        warmup_epochs: float = 0.0, greater_is_better: bool = True,
        plateau_patience: int = 2, plateau_factor: float = 0.5, cycle_epochs: float = 2.0,
        min_lr_ratio: float = 0.01,
    ) -> None:
        if name not in SCHEDULES:
            raise _unknown("schedule", name, SCHEDULES, "schedule")
        self.name = name
        self.steps = 0
        total = max(1, epochs * steps_per_epoch)
        warmup = int(warmup_epochs * steps_per_epoch)
        peak = [group["lr"] for group in optimizer.param_groups]
        self.per_step: Any = None
        self.per_epoch: Any = None
        if name == "cosine":
            self.per_step = torch.optim.lr_scheduler.LambdaLR(
                optimizer, _warmup_cosine(total, warmup))
        elif name == "constant":
            self.per_step = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_constant(warmup))
        elif name == "onecycle":
            # OneCycle needs at least two steps in each phase; tiny runs get a constant rate
            rising = (warmup / total) if warmup else 0.25
            rising = min(max(rising, 2 / total), 1 - 2 / total)
            self.per_step = (torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=peak, total_steps=total, pct_start=rising,
                cycle_momentum=False) if total >= 6
                else torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0))
        elif name == "cyclic":
            half = max(1, int(cycle_epochs * steps_per_epoch / 2))
            self.per_step = torch.optim.lr_scheduler.CyclicLR(
                optimizer, base_lr=[lr * min_lr_ratio for lr in peak], max_lr=peak,
                step_size_up=half, mode="triangular2", cycle_momentum=False)
        else:  # plateau: warm up per step, then cut the rate when the score stops improving
            self.warmup_steps = warmup
            self.per_step = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_constant(warmup))
            self.per_epoch = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="max" if greater_is_better else "min", factor=plateau_factor,
                patience=plateau_patience)

    def after_step(self) -> None:
        self.steps += 1
        if self.per_epoch is not None and self.steps > self.warmup_steps:
            return  # past warmup the plateau scheduler alone moves the rate
        self.per_step.step()

    def after_epoch(self, score: float) -> None:
        if self.per_epoch is not None and math.isfinite(score):
            self.per_epoch.step(score)

    def state_dict(self) -> dict:
        return {"steps": self.steps, "per_step": self.per_step.state_dict(),
                "per_epoch": self.per_epoch.state_dict() if self.per_epoch else None}

    def load_state_dict(self, state: dict) -> None:
        self.steps = state["steps"]
        self.per_step.load_state_dict(state["per_step"])
        if self.per_epoch is not None:
            self.per_epoch.load_state_dict(state["per_epoch"])
