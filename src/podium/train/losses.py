"""Training losses by name, in one registry, so a model's config can pick one (or a weighted
mix) for whatever its task predicts.

:data:`LOSSES` holds every loss podium trains with, by the kind of output it scores and name:
``"image"`` losses score one row of logits per image (registered by the classify plug-in,
:mod:`podium.tasks.classify.losses`), ``"pixel"`` losses one map per image (registered by the
segment plug-in, :mod:`podium.tasks.segment.losses`); a new task registers its own kind. One
config form serves them all: a name, ``{name, params}``, or a list of those, each with an
optional ``weight``, summed by :class:`WeightedLossSum`; bad config fails here, before any
training starts, naming the config key. The loss modules here (BCE, focal, soft F1, the one
Lovasz hinge, MSE, smooth L1) are the building blocks the plug-ins register.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from podium.errors import PodiumInputError, did_you_mean

LOSS_KEY = "models.<name>.loss"


class _ParamError(ValueError):
    """A bad value for one loss param; :class:`LossFactory` adds the config key and loss name."""

    def __init__(self, param: str, problem: str) -> None:
        super().__init__(problem)
        self.param = param
        self.problem = problem


def _number(param: str, value: Any, low: float, high: float = float("inf"), *,
            low_open: bool = False, high_open: bool = True) -> float:
    """A float param between ``low`` and ``high``, each bound open or closed as told."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _ParamError(param, f"expected a number, got {value!r}")
    value = float(value)
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    if not (above and below):
        bounds = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise _ParamError(param, f"{value:g} is outside {bounds}")
    return value


def _one_hot(targets: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Class-index targets as a 0/1 matrix shaped like ``logits``."""
    return F.one_hot(targets.long(), logits.shape[1]).to(logits.dtype)


# --- losses of class logits (the classify plug-in registers them for images) -----------


class BCEWithLogits(nn.Module):
    """Per-class binary cross-entropy, with targets pulled ``label_smoothing / 2`` towards 0.5
    (label smoothing's two-outcome form). ``one_hot`` makes it usable with class-index targets,
    so a binary or multiclass model can be trained one-vs-rest."""

    def __init__(self, pos_weight: torch.Tensor | None = None, label_smoothing: float = 0.0,
                 one_hot: bool = False) -> None:
        super().__init__()
        self.register_buffer("pos_weight", pos_weight)
        self.label_smoothing = label_smoothing
        self.one_hot = one_hot

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        targets = _one_hot(targets, logits) if self.one_hot else targets.to(logits.dtype)
        if self.label_smoothing:
            targets = targets * (1.0 - self.label_smoothing) + 0.5 * self.label_smoothing
        return F.binary_cross_entropy_with_logits(logits, targets, pos_weight=self.pos_weight)


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017): cross-entropy scaled by ``(1 - p_t) ** gamma`` so easy,
    confident examples count less and rare hard ones dominate. Softmax over classes for
    class-index targets, an independent sigmoid per class for multilabel. ``alpha`` weighs the
    true class (softmax) or positives against negatives (sigmoid: ``alpha`` vs ``1 - alpha``).
    Averaged over samples (and classes for sigmoid); ``gamma=0`` without ``alpha`` is exactly
    cross-entropy or BCE."""

    def __init__(self, gamma: float = 2.0, alpha: torch.Tensor | None = None,
                 sigmoid: bool = False) -> None:
        super().__init__()
        self.gamma = gamma
        self.register_buffer("alpha", alpha)
        self.sigmoid = sigmoid

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if self.sigmoid:
            targets = targets.to(logits.dtype)
            ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        else:
            ce = F.cross_entropy(logits, targets.long(), reduction="none")
        loss = ce
        if self.gamma:
            # 1 - p_t from ce = -log p_t, accurate when p_t is close to 1; the clamp keeps the
            # gradient of x ** gamma finite at x = 0 when gamma < 1.
            miss = (-torch.expm1(-ce)).clamp(min=torch.finfo(ce.dtype).tiny)
            loss = loss * miss.pow(self.gamma)
        if self.alpha is not None:
            if self.sigmoid:
                loss = loss * (self.alpha * targets + (1.0 - self.alpha) * (1.0 - targets))
            else:
                loss = loss * self.alpha[targets.long()]
        return loss.mean()


class SoftF1Loss(nn.Module):
    """``1 - macro F1`` with probabilities in place of hard predictions, so the F1 the
    leaderboard scores can be optimised directly. True/false positives are summed over the
    batch per class; a class absent from the batch scores F1 0 (as in the usual Kaggle form),
    so small batches that miss classes leave a floor above 0."""

    def __init__(self, eps: float = 1e-7, sigmoid: bool = False) -> None:
        super().__init__()
        self.eps = eps
        self.sigmoid = sigmoid

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if self.sigmoid:
            proba, truth = torch.sigmoid(logits), targets.to(logits.dtype)
        else:
            proba, truth = torch.softmax(logits, dim=1), _one_hot(targets, logits)
        tp = (proba * truth).sum(dim=0)
        fp = (proba * (1.0 - truth)).sum(dim=0)
        fn = ((1.0 - proba) * truth).sum(dim=0)
        f1 = 2.0 * tp / (2.0 * tp + fp + fn + self.eps)
        return 1.0 - f1.mean()


def lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovasz extension of the Jaccard loss w.r.t. sorted errors (Berman et al.
    2018, Alg. 1): the Jaccard loss increments as each sorted sample joins the mispredicted set.
    Works column-wise on an ``N x C`` matrix of 0/1 ground truth sorted by descending error."""
    gts = gt_sorted.sum(dim=0, keepdim=True)
    intersection = gts - gt_sorted.cumsum(dim=0)
    union = gts + (1.0 - gt_sorted).cumsum(dim=0)  # >= 1 from the first row on
    jaccard = 1.0 - intersection / union
    return torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]], dim=0)


class LovaszHingeLoss(nn.Module):
    """Lovasz hinge (Berman et al. 2018): a convex surrogate of the Jaccard loss, i.e. of
    1 - IoU between predicted and true positives. Applied per class over the batch and averaged
    over classes, as Human Protein Atlas solutions used it. A binary task's two logits are
    scored by their margin ``logit_1 - logit_0``, the quantity its softmax thresholds."""

    def __init__(self, index_targets: bool = False) -> None:
        super().__init__()
        self.index_targets = index_targets

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if self.index_targets:
            margin = logits[:, 1] - logits[:, 0] if logits.shape[1] == 2 else logits[:, 0]
            logits, targets = margin[:, None], targets.reshape(-1, 1)
        return lovasz_hinge(logits, targets.to(logits.dtype))


def lovasz_hinge(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The Lovasz hinge of each column of ``scores`` (logits, samples x columns) against its
    0/1 ``labels``, averaged over the columns: one definition for every task (a class over the
    batch here, an image's or the batch's pixels of one mask class in segmentation)."""
    errors = 1.0 - scores * (2.0 * labels - 1.0)
    errors_sorted, order = torch.sort(errors, dim=0, descending=True)
    grad = lovasz_grad(torch.gather(labels, 0, order))
    return (F.relu(errors_sorted) * grad).sum(dim=0).mean()


# --- losses of values (regression, ordinal) ---------------------------------------------


def _flat_scores(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``(N, 1)`` or ``(N,)`` outputs and targets as two float ``(N,)`` vectors."""
    if logits.ndim > 2 or (logits.ndim == 2 and logits.shape[1] != 1):
        raise ValueError(f"regression loss needs logits of shape (N, 1) or (N,), "
                         f"got {tuple(logits.shape)}")
    pred = logits.float().reshape(-1)
    return pred, targets.to(pred.dtype).reshape(-1)


class MSELoss(nn.Module):
    """Mean squared error on one output per sample."""

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(*_flat_scores(logits, targets))


class SmoothL1Loss(nn.Module):
    """Huber-like loss: squared below ``beta``, absolute above, so outliers pull less."""

    def __init__(self, beta: float = 1.0) -> None:
        super().__init__()
        self.beta = beta

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.smooth_l1_loss(*_flat_scores(logits, targets), beta=self.beta)


@dataclass(frozen=True)
class LossFactory:
    """A named loss: the tasks it fits, a builder ``(target, **params) -> module`` whose keyword
    arguments are the params the config may set (``target`` is what the kind builds from: the
    task spec for image losses, the class count for pixel losses), and what to use instead on a
    task it does not fit."""

    name: str
    build: Callable[..., nn.Module]
    tasks: tuple[str, ...]
    instead: str = ""

    @property
    def params(self) -> tuple[str, ...]:
        """The config params this loss accepts, read from the builder's signature."""
        return tuple(inspect.signature(self.build).parameters)[1:]


def build_with_params(name: str, build: Callable[..., nn.Module], first: Any,
                      params: Mapping[str, Any] | None, accepted: tuple[str, ...],
                      key: str) -> nn.Module:
    """``build(first, **params)`` once every param is one the loss accepts; a bad value
    becomes a PodiumInputError naming its config key (shared by classification and
    segmentation losses)."""
    params = dict(params or {})
    check_param_names(name, params, accepted, key)
    try:
        return build(first, **params)
    except _ParamError as err:
        raise PodiumInputError(
            f"config key {key}.params.{err.param}: loss {name!r}: {err.problem}."
        ) from None


def check_param_names(name: str, params: Mapping[str, Any], accepted: tuple[str, ...],
                      key: str) -> None:
    """Refuse a param the loss ``name`` does not accept, with the close names."""
    unknown = [p for p in params if p not in accepted]
    if unknown:
        raise PodiumInputError(
            f"config key {key}.params: loss {name!r} has no param "
            f"{', '.join(map(repr, unknown))}.{did_you_mean(unknown[0], accepted)} "
            f"Accepted params: {', '.join(accepted) or 'none'}."
        )


class WeightedLossSum(nn.Module):
    """``sum(weight_i * loss_i)``; :meth:`parts` gives each unweighted loss so a trainer can log
    them, and :attr:`last_parts` keeps the detached parts of the latest forward (tensors, so
    logging them costs no device sync until read)."""

    def __init__(self, losses: Mapping[str, nn.Module], weights: Mapping[str, float]) -> None:
        super().__init__()
        self.losses = nn.ModuleDict(dict(losses))
        self.weights = dict(weights)
        self.last_parts: dict[str, torch.Tensor] = {}

    def parts(self, logits: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each loss's unweighted value, by its part name."""
        return {name: loss(logits, targets) for name, loss in self.losses.items()}

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        parts = self.parts(logits, targets)
        self.last_parts = {name: value.detach() for name, value in parts.items()}
        return sum(self.weights[name] * value for name, value in parts.items())


@dataclass
class _Kind:
    """The losses of one kind of output, its default per task, and how an error names a task."""

    losses: dict[str, LossFactory]
    defaults: dict[str, Any]
    subject: str


class LossRegistry:
    """Every loss podium trains with, by kind of output and name; one lookup, one config form,
    one set of errors for every task. A task plug-in adds its kind with :meth:`register`."""

    def __init__(self) -> None:
        self._kinds: dict[str, _Kind] = {}

    def register(self, kind: str, factories: tuple[LossFactory, ...],
                 defaults: Mapping[str, Any], subject: str) -> None:
        """Add the losses of ``kind``, its default loss config per task, and ``subject``, a
        format string with ``{task}`` that says in an error what is being trained."""
        if kind in self._kinds:
            raise ValueError(f"losses of kind {kind!r} are registered already")
        self._kinds[kind] = _Kind({f.name: f for f in factories}, dict(defaults), subject)

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(self._kinds)

    def losses(self, kind: str) -> Mapping[str, LossFactory]:
        """The losses of ``kind`` by name, in registration order."""
        return MappingProxyType(self._kind(kind).losses)

    def _kind(self, kind: str) -> _Kind:
        if kind not in self._kinds:
            raise KeyError(f"no losses of kind {kind!r}; registered: {', '.join(self._kinds)}")
        return self._kinds[kind]

    def lookup(self, kind: str, name: Any, task: str, key: str = LOSS_KEY) -> LossFactory:
        """The loss ``name`` of ``kind``, refused when unknown or when it cannot train ``task``."""
        losses = self._kind(kind).losses
        if not isinstance(name, str):
            raise PodiumInputError(f"config key {key}: expected a loss name, got {name!r}.")
        if name not in losses:
            raise PodiumInputError(
                f"config key {key}: unknown loss {name!r}.{did_you_mean(name, losses)} "
                f"Known: {', '.join(losses)}."
            )
        factory = losses[name]
        if task not in factory.tasks:
            instead = f"; use {factory.instead}" if factory.instead else ""
            raise PodiumInputError(
                f"config key {key}: loss {name!r} supports tasks {', '.join(factory.tasks)}; "
                f"{self._kind(kind).subject.format(task=task)}{instead}."
            )
        return factory

    def default(self, kind: str, task: str, key: str = LOSS_KEY) -> Any:
        """The loss config ``task`` trains with when a model names none."""
        entry = self._kind(kind)
        if task not in entry.defaults:
            raise PodiumInputError(f"config key {key}: no default loss for task {task!r}; "
                                   f"name one of {', '.join(entry.losses)}.")
        return entry.defaults[task]

    def build(self, config: str | Mapping[str, Any] | list | None, kind: str, task: str,
              target: Any, key: str = LOSS_KEY) -> nn.Module:
        """The loss module a model's config asks for: ``None`` (the task's default), a name,
        ``{name, params}``, or a list of those (each with an optional ``weight``, default 1.0)
        summed by :class:`WeightedLossSum`; each builder gets ``target`` and its params."""
        if config is None:
            config = self.default(kind, task, key)
        if not isinstance(config, list | tuple):
            name, params, _ = _entry(config, key, ("name", "params"))
            factory = self.lookup(kind, name, task, key)
            return build_with_params(name, factory.build, target, params, factory.params, key)
        if not config:
            raise PodiumInputError(f"config key {key}: an empty list names no loss.")
        losses: dict[str, nn.Module] = {}
        weights: dict[str, float] = {}
        for i, item in enumerate(config):
            item_key = f"{key}[{i}]"
            name, params, weight = _entry(item, item_key, ("name", "params", "weight"))
            factory = self.lookup(kind, name, task, item_key)
            part = name if name not in losses else f"{name}_{i}"
            weights[part] = _weight(weight, item_key)
            losses[part] = build_with_params(name, factory.build, target, params, factory.params,
                                             item_key)
        return WeightedLossSum(losses, weights)

    def check(self, config: str | Mapping[str, Any] | list | None, kind: str, task: str,
              key: str = LOSS_KEY) -> None:
        """What can be checked of a loss config before the classes are known (config check):
        its form, every name, that each loss fits ``task``, every param name and weight. Param
        values that depend on the classes (per-class weights) are checked by :meth:`build`."""
        if config is None:
            return
        items = list(enumerate(config)) if isinstance(config, list | tuple) else [(None, config)]
        if not items:
            raise PodiumInputError(f"config key {key}: an empty list names no loss.")
        for i, item in items:
            item_key = key if i is None else f"{key}[{i}]"
            allowed = ("name", "params") if i is None else ("name", "params", "weight")
            name, params, weight = _entry(item, item_key, allowed)
            factory = self.lookup(kind, name, task, item_key)
            check_param_names(name, params, factory.params, item_key)
            _weight(weight, item_key)


def _entry(item: Any, key: str, allowed: tuple[str, ...]) -> tuple[str, dict, Any]:
    """``(name, params, weight)`` of a string or ``{"name", "params"[, "weight"]}`` entry."""
    if isinstance(item, str):
        return item, {}, 1.0
    if not isinstance(item, Mapping) or "name" not in item:
        raise PodiumInputError(
            f"config key {key}: expected a loss name or a mapping with 'name' (and optional "
            f"'params'), got {item!r}."
        )
    extra = [k for k in item if k not in allowed]
    if extra:
        raise PodiumInputError(
            f"config key {key}: unknown key(s) {', '.join(map(repr, extra))}; "
            f"allowed: {', '.join(allowed)}."
        )
    params = item.get("params") or {}
    if not isinstance(params, Mapping):
        raise PodiumInputError(f"config key {key}.params: expected a mapping, got {params!r}.")
    return item["name"], dict(params), item.get("weight", 1.0)


def _weight(value: Any, key: str) -> float:
    try:
        return _number("weight", value, 0.0)
    except _ParamError as err:
        raise PodiumInputError(f"config key {key}.weight: {err.problem}.") from None


LOSSES = LossRegistry()
"""Every loss, by kind of output and name (each task plug-in registers its kinds)."""
