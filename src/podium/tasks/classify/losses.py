"""The classify plug-in's losses: the ``"image"`` kind of :data:`podium.train.losses.LOSSES`,
registered when this module is imported, and the default loss of each classification task.

Image logits are ``N x n_classes``; targets are class indices ``(N,)`` for binary and
multiclass, a 0/1 float matrix ``N x n_classes`` for multilabel, and floats ``(N,)`` against
logits ``(N, 1)`` for regression and ordinal tasks (:func:`build_loss`). The loss modules
themselves are shared building blocks (:mod:`podium.train.losses`; the segment plug-in wraps
some of them for maps); what lives here is which of them trains which task, with which
params.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from podium.task import TaskSpec
from podium.train.losses import (
    LOSS_KEY,
    LOSSES,
    BCEWithLogits,
    FocalLoss,
    LossFactory,
    LovaszHingeLoss,
    MSELoss,
    SmoothL1Loss,
    SoftF1Loss,
    _number,
    _ParamError,
)

INDEX_TASKS = ("binary", "multiclass")
SCALAR_TASKS = ("regression", "ordinal")
DEFAULT_LOSS = {"binary": "cross_entropy", "multiclass": "cross_entropy", "multilabel": "bce",
                "regression": "mse", "ordinal": "mse"}


def _per_class(param: str, value: Any, spec: TaskSpec, high: float = float("inf"),
               scalar: bool = True) -> torch.Tensor:
    """A number >= 0, or a list of one per class in class order, as a float tensor."""
    if isinstance(value, list | tuple):
        if len(value) != spec.n_classes:
            raise _ParamError(param, f"expected {spec.n_classes} values (one per class "
                                     f"{', '.join(spec.classes)}), got {len(value)}")
        return torch.tensor([_number(param, v, 0.0, high, high_open=False) for v in value])
    if not scalar:
        raise _ParamError(param, f"expected a list of {spec.n_classes} values, one per class")
    return torch.tensor(_number(param, value, 0.0, high, high_open=False))


def _cross_entropy(spec: TaskSpec, label_smoothing: float = 0.0,
                   weight: list[float] | None = None) -> nn.Module:
    label_smoothing = _number("label_smoothing", label_smoothing, 0.0, 1.0)
    weights = None if weight is None else _per_class("weight", weight, spec, scalar=False)
    return nn.CrossEntropyLoss(weight=weights, label_smoothing=label_smoothing)


def _bce(spec: TaskSpec, pos_weight: float | list[float] | None = None,
         label_smoothing: float = 0.0) -> nn.Module:
    weights = None if pos_weight is None else _per_class("pos_weight", pos_weight, spec)
    return BCEWithLogits(weights, _number("label_smoothing", label_smoothing, 0.0, 1.0),
                         one_hot=not spec.is_multilabel)


def _focal(spec: TaskSpec, gamma: float = 2.0,
           alpha: float | list[float] | None = None) -> nn.Module:
    gamma = _number("gamma", gamma, 0.0)
    weights = None
    if alpha is not None and spec.is_multilabel:
        weights = _per_class("alpha", alpha, spec, 1.0)
    elif alpha is not None and spec.task == "binary" and not isinstance(alpha, list | tuple):
        positive = _number("alpha", alpha, 0.0, 1.0, high_open=False)  # weight of the second class
        weights = torch.tensor([1.0 - positive, positive])
    elif alpha is not None:
        weights = _per_class("alpha", alpha, spec, scalar=False)
    return FocalLoss(gamma, weights, sigmoid=spec.is_multilabel)


def _soft_f1(spec: TaskSpec, eps: float = 1e-7) -> nn.Module:
    return SoftF1Loss(_number("eps", eps, 0.0, low_open=True), sigmoid=spec.is_multilabel)


def _lovasz_hinge(spec: TaskSpec) -> nn.Module:
    return LovaszHingeLoss(index_targets=not spec.is_multilabel)


def _mse(spec: TaskSpec) -> nn.Module:
    return MSELoss()


def _smooth_l1(spec: TaskSpec, beta: float = 1.0) -> nn.Module:
    return SmoothL1Loss(_number("beta", beta, 0.0))


IMAGE = "image"
LOSSES.register(
    IMAGE,
    (
        LossFactory("cross_entropy", _cross_entropy, INDEX_TASKS),
        LossFactory("bce", _bce, (*INDEX_TASKS, "multilabel")),
        LossFactory("focal", _focal, (*INDEX_TASKS, "multilabel")),
        LossFactory("soft_f1", _soft_f1, (*INDEX_TASKS, "multilabel")),
        LossFactory("lovasz_hinge", _lovasz_hinge, ("binary", "multilabel")),
        LossFactory("mse", _mse, SCALAR_TASKS),
        LossFactory("smooth_l1", _smooth_l1, SCALAR_TASKS),
    ),
    defaults=DEFAULT_LOSS,
    subject="this competition is {task!r}",
)


def build_loss(config: str | Mapping[str, Any] | list | None, spec: TaskSpec,
               key: str = LOSS_KEY) -> nn.Module:
    """The loss an image model's config asks for (:meth:`LossRegistry.build`); ``None`` is the
    task's default: cross_entropy for binary and multiclass, bce for multilabel, mse for
    regression and ordinal. ``key`` names the config key in errors, e.g.
    ``models.resnet.loss``."""
    return LOSSES.build(config, IMAGE, spec.task, spec, key)


def check_loss(config: str | Mapping[str, Any] | list | None, task: str,
               key: str = LOSS_KEY) -> None:
    """:meth:`LossRegistry.check` for an image model training ``task``."""
    LOSSES.check(config, IMAGE, task, key)
