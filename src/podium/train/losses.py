"""Training losses by name, in one registry, so a model's config can pick one (or a weighted
mix) for whatever its task predicts.

:data:`LOSSES` holds every loss podium trains with, by the kind of output it scores and name:
``"image"`` losses score one row of logits per image (registered here), ``"pixel"`` losses one
map per image (registered by the segment plug-in, :mod:`podium.tasks.segment.losses`); a new
task registers its own kind. One config form serves them all: a name, ``{name, params}``, or a
list of those, each with an optional ``weight``, summed by :class:`WeightedLossSum`; bad config
fails here, before any training starts, naming the config key.

Image logits are ``N x n_classes``; targets are class indices ``(N,)`` for binary and
multiclass, a 0/1 float matrix ``N x n_classes`` for multilabel, and floats ``(N,)`` against
logits ``(N, 1)`` for regression and ordinal tasks (:func:`build_loss`).
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
from podium.task import TaskSpec

LOSS_KEY = "models.<name>.loss"
INDEX_TASKS = ("binary", "multiclass")
SCALAR_TASKS = ("regression", "ordinal")
DEFAULT_LOSS = {"binary": "cross_entropy", "multiclass": "cross_entropy", "multilabel": "bce",
                "regression": "mse", "ordinal": "mse"}


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


def _one_hot(targets: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Class-index targets as a 0/1 matrix shaped like ``logits``."""
    return F.one_hot(targets.long(), logits.shape[1]).to(logits.dtype)


# --- classification losses -----------------------------------------------------------------


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


# --- regression losses ---------------------------------------------------------------------


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


# --- builders: config params -> module -----------------------------------------------------


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
"""Every loss, by kind of output and name (this module registers the ``"image"`` kind)."""
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
