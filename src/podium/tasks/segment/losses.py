"""Per-pixel segmentation losses by name, so a model's config can pick one (or a weighted mix).

Logits are ``N x K x H x W``. ``K == 1`` is a binary mask scored through a sigmoid, against
0/1 targets ``N x 1 x H x W`` or ``N x H x W``; ``K > 1`` is one class per pixel scored through
a softmax, against class ids ``N x H x W``; ``multilabel`` masks (podium's several mask
classes, which may overlap) are ``K`` binary masks, each class scored by the binary loss and the
classes averaged (:class:`PerClassLoss`). They are the ``"pixel"`` losses of the one registry,
:data:`podium.train.losses.LOSSES`, registered when this module is imported;
:func:`build_segmentation_loss` reads the config key ``models.<name>.loss`` in its format (a
name, ``{name, params}``, or a list of those with ``weight`` for a weighted sum) and fails on
bad config before any training starts.

Region losses (``dice``, ``jaccard``) are soft: probabilities stand in for hard masks. By
default they pool every pixel of the batch per class (``per_image: false``), which is steadier
on small or empty masks; ``per_image: true`` scores each image and averages, as per-image
Kaggle metrics do. ``smooth`` is added to numerator and denominator, so a class absent from
both target and prediction scores a perfect 1 instead of 0/0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from podium.errors import PodiumInputError
from podium.train.losses import (
    LOSSES,
    BCEWithLogits,
    FocalLoss,
    LossFactory,
    WeightedLossSum,
    _number,
    _ParamError,
    lovasz_grad,
    lovasz_hinge,
)

LOSS_KEY = "models.<name>.loss"
PIXEL = "pixel"
EPS = 1e-7
BINARY, MULTICLASS = "binary", "multiclass"


def pixel_targets(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Targets in the one form each loss uses: a float ``N x 1 x H x W`` 0/1 mask for binary
    logits, long class ids ``N x H x W`` for multiclass logits."""
    if logits.ndim != 4:
        raise ValueError(f"segmentation logits must be N x K x H x W, got {tuple(logits.shape)}")
    n, k, h, w = logits.shape
    if k == 1:
        targets = targets.unsqueeze(1) if targets.ndim == 3 else targets
        expected, targets = (n, 1, h, w), targets.to(logits.dtype)
    else:
        targets = targets.squeeze(1) if targets.ndim == 4 and targets.shape[1] == 1 else targets
        expected, targets = (n, h, w), targets.long()
    if tuple(targets.shape) != expected:
        raise ValueError(f"targets of shape {tuple(targets.shape)} do not fit logits of shape "
                         f"{tuple(logits.shape)}; expected {expected}")
    return targets


def probabilities_and_truth(logits: torch.Tensor,
                            targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class probabilities and 0/1 truth, both float ``N x K x H x W``."""
    targets = pixel_targets(logits, targets)
    logits = logits.float()
    if logits.shape[1] == 1:
        return torch.sigmoid(logits), targets.float()
    truth = F.one_hot(targets, logits.shape[1]).permute(0, 3, 1, 2).float()
    return torch.softmax(logits, dim=1), truth


class PixelTargets(nn.Module):
    """A loss from :mod:`podium.train.losses` fed targets in :func:`pixel_targets` form."""

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.loss(logits, pixel_targets(logits, targets))


class SoftRegionLoss(nn.Module):
    """``1 - soft Dice`` or ``1 - soft Jaccard (IoU)``, averaged over classes (and images when
    ``per_image``). Dice is ``(2 I + s) / (P + T + s)`` and Jaccard ``(I + s) / (P + T - I + s)``
    with ``I`` the summed product of probabilities and truth, ``P`` and ``T`` their sums and
    ``s = smooth``. A binary mask is one class (the foreground); a multiclass mask scores every
    class, background included."""

    def __init__(self, jaccard: bool = False, smooth: float = 1.0,
                 per_image: bool = False) -> None:
        super().__init__()
        self.jaccard = jaccard
        self.smooth = smooth
        self.per_image = per_image

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        proba, truth = probabilities_and_truth(logits, targets)
        dims = (2, 3) if self.per_image else (0, 2, 3)
        intersection = (proba * truth).sum(dims)
        total = proba.sum(dims) + truth.sum(dims)
        if self.jaccard:
            numerator, denominator = intersection, total - intersection
        else:
            numerator, denominator = 2.0 * intersection, total
        score = (numerator + self.smooth) / (denominator + self.smooth).clamp(min=EPS)
        return 1.0 - score.mean()

    def extra_repr(self) -> str:
        kind = "jaccard" if self.jaccard else "dice"
        return f"{kind}, smooth={self.smooth}, per_image={self.per_image}"


def _columns(values: torch.Tensor, per_image: bool) -> torch.Tensor:
    """``N x K x H x W`` as a pixels x columns matrix, one column per (image, class) pair or,
    pooling the batch, per class: the layout :func:`lovasz_grad` works on."""
    n, k = values.shape[:2]
    columns = values.reshape(n * k, -1) if per_image else values.transpose(0, 1).reshape(k, -1)
    return columns.T


class LovaszLoss(nn.Module):
    """Lovasz losses (Berman et al. 2018), convex surrogates of ``1 - IoU``: the Lovasz hinge on
    logits for a binary mask, Lovasz-softmax on probabilities (averaged over the classes
    present in the target) for a multiclass one. ``per_image`` scores each image and averages,
    as the TGS Salt solutions did; an image with an empty target then costs its largest
    hinge error, which is 0 once every pixel is confidently background."""

    def __init__(self, per_image: bool = True) -> None:
        super().__init__()
        self.per_image = per_image

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        targets = pixel_targets(logits, targets)
        logits = logits.float()
        binary = logits.shape[1] == 1
        if binary:
            truth = targets.float()
        else:
            proba, truth = probabilities_and_truth(logits, targets)
            errors = (truth - proba).abs()
        if binary:
            return lovasz_hinge(_columns(logits, self.per_image), _columns(truth, self.per_image))
        errors, truth = _columns(errors, self.per_image), _columns(truth, self.per_image)
        errors_sorted, order = torch.sort(errors, dim=0, descending=True)
        grad = lovasz_grad(torch.gather(truth, 0, order))
        # Mean over the classes present in each image (or the batch), then over images.
        losses = (errors_sorted * grad).sum(dim=0).reshape(-1, logits.shape[1])
        present = (truth.sum(dim=0) > 0).float().reshape(losses.shape)
        return ((losses * present).sum(dim=1) / present.sum(dim=1).clamp(min=1.0)).mean()

    def extra_repr(self) -> str:
        return f"per_image={self.per_image}"


class PerClassLoss(nn.Module):
    """A binary loss applied to each of ``K`` sigmoid channels (targets ``N x K x H x W`` 0/1)
    and averaged over the classes: region losses then pool each class on its own, so a large
    class does not drown a small one."""

    def __init__(self, loss: nn.Module, n_classes: int) -> None:
        super().__init__()
        self.loss, self.n_classes = loss, n_classes

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if logits.ndim != 4 or tuple(targets.shape) != tuple(logits.shape):
            raise ValueError(f"multilabel targets of shape {tuple(targets.shape)} do not fit "
                             f"logits of shape {tuple(logits.shape)}; they must be equal")
        losses = [self.loss(logits[:, k:k + 1], targets[:, k:k + 1])
                  for k in range(logits.shape[1])]
        return torch.stack(losses).mean()

    def extra_repr(self) -> str:
        return f"n_classes={self.n_classes}"


# --- builders: config params -> module -----------------------------------------------------


def _flag(param: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _ParamError(param, f"expected true or false, got {value!r}")
    return value


def _smooth(value: Any) -> float:
    return _number("smooth", value, 0.0)


def _class_weights(param: str, value: Any, n_classes: int) -> torch.Tensor:
    if not isinstance(value, list | tuple) or len(value) != n_classes:
        raise _ParamError(param, f"expected a list of {n_classes} numbers >= 0, one per class "
                                 f"in class-id order, got {value!r}")
    return torch.tensor([_number(param, v, 0.0) for v in value])


def _dice(n_classes: int, smooth: float = 1.0, per_image: bool = False) -> nn.Module:
    return SoftRegionLoss(False, _smooth(smooth), _flag("per_image", per_image))


def _jaccard(n_classes: int, smooth: float = 1.0, per_image: bool = False) -> nn.Module:
    return SoftRegionLoss(True, _smooth(smooth), _flag("per_image", per_image))


def _bce(n_classes: int, pos_weight: float | None = None) -> nn.Module:
    weight = None if pos_weight is None else torch.tensor(
        _number("pos_weight", pos_weight, 0.0, low_open=True))
    return PixelTargets(BCEWithLogits(weight))


def _cross_entropy(n_classes: int, weight: list[float] | None = None) -> nn.Module:
    weights = None if weight is None else _class_weights("weight", weight, n_classes)
    return PixelTargets(nn.CrossEntropyLoss(weight=weights))


def _focal_module(n_classes: int, gamma: Any, alpha: Any) -> nn.Module:
    gamma = _number("gamma", gamma, 0.0)
    if alpha is None:
        weights = None
    elif n_classes == 1:
        weights = torch.tensor(_number("alpha", alpha, 0.0, 1.0, high_open=False))
    else:
        weights = _class_weights("alpha", alpha, n_classes)
    return PixelTargets(FocalLoss(gamma, weights, sigmoid=n_classes == 1))


def _focal(n_classes: int, gamma: float = 2.0, alpha: float | list[float] | None = None
           ) -> nn.Module:
    return _focal_module(n_classes, gamma, alpha)


def _lovasz(n_classes: int, per_image: bool = True) -> nn.Module:
    return LovaszLoss(_flag("per_image", per_image))


def _bce_dice(n_classes: int, bce_weight: float = 1.0, dice_weight: float = 1.0,
              smooth: float = 1.0, per_image: bool = False) -> nn.Module:
    parts = {"bce": _bce(n_classes), "dice": _dice(n_classes, smooth, per_image)}
    weights = {"bce": _number("bce_weight", bce_weight, 0.0),
               "dice": _number("dice_weight", dice_weight, 0.0)}
    return WeightedLossSum(parts, weights)


def _focal_lovasz(n_classes: int, focal_weight: float = 1.0, lovasz_weight: float = 1.0,
                  gamma: float = 2.0, alpha: float | list[float] | None = None,
                  per_image: bool = True) -> nn.Module:
    parts = {"focal": _focal_module(n_classes, gamma, alpha),
             "lovasz": _lovasz(n_classes, per_image)}
    weights = {"focal": _number("focal_weight", focal_weight, 0.0),
               "lovasz": _number("lovasz_weight", lovasz_weight, 0.0)}
    return WeightedLossSum(parts, weights)


LOSSES.register(
    PIXEL,
    (
        LossFactory("dice", _dice, (BINARY, MULTICLASS)),
        LossFactory("jaccard", _jaccard, (BINARY, MULTICLASS)),
        LossFactory("bce", _bce, (BINARY,), "cross_entropy"),
        LossFactory("cross_entropy", _cross_entropy, (MULTICLASS,), "bce"),
        LossFactory("bce_dice", _bce_dice, (BINARY,),
                    "[cross_entropy, dice] (a list is a weighted sum)"),
        LossFactory("focal", _focal, (BINARY, MULTICLASS)),
        LossFactory("lovasz", _lovasz, (BINARY, MULTICLASS)),
        LossFactory("focal_lovasz", _focal_lovasz, (BINARY, MULTICLASS)),
    ),
    defaults={BINARY: "bce_dice", MULTICLASS: ["cross_entropy", "dice"]},
    subject="this model predicts {task} masks",
)


def build_segmentation_loss(config: str | Mapping[str, Any] | list | None, n_classes: int,
                            key: str = LOSS_KEY, multilabel: bool = False) -> nn.Module:
    """The per-pixel loss a model's config asks for (:meth:`LossRegistry.build` with the
    ``"pixel"`` losses); forward is ``(logits, targets) -> scalar``.

    ``config`` is ``None`` (``bce_dice`` for a binary mask, ``n_classes == 1``; cross-entropy
    plus dice for ``n_classes > 1``), a loss name, ``{"name": ..., "params": {...}}``, or a list
    of those (each may add ``"weight"``, default 1.0) for a
    :class:`~podium.train.losses.WeightedLossSum`. ``key`` names the config key in errors.
    ``multilabel``: ``n_classes`` sigmoid channels, each scored by the binary loss ``config``
    names (:class:`PerClassLoss`).
    """
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 1:
        raise PodiumInputError(f"n_classes must be a positive integer, not {n_classes!r}")
    if multilabel and n_classes > 1:
        return PerClassLoss(build_segmentation_loss(config, 1, key), n_classes)
    kind = BINARY if n_classes == 1 else MULTICLASS
    return LOSSES.build(config, PIXEL, kind, n_classes, key)


def check_segmentation_loss(config: str | Mapping[str, Any] | list | None,
                            key: str = LOSS_KEY) -> None:
    """The config check's look-up of a segmentation model's ``loss``: built for one binary
    channel, as every mask class is trained (:func:`build_segmentation_loss`)."""
    build_segmentation_loss(config, 1, key)
