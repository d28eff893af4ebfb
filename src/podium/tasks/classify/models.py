"""Classifier heads (pooling, optional FC neck, final Linear) on timm backbones.

timm's own heads only offer timm's pools; Kaggle solutions often swap in GeM or concat pooling
and a small FC neck, and give the backbone and the head different learning rates. Building the
backbone headless (``num_classes=0, global_pool=""``) and owning the head here makes all of
that configurable, and exposes ``.backbone`` and ``.head`` separately for optimiser groups and
freezing.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import timm
import torch
from torch import nn

from podium.errors import PodiumInputError


class AvgPool(nn.Module):
    """Global average pooling (GAP): ``(B, C, H, W) -> (B, C)``."""

    feature_multiplier = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(-2, -1))


class MaxPool(nn.Module):
    """Global max pooling (GMP): ``(B, C, H, W) -> (B, C)``."""

    feature_multiplier = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.amax(dim=(-2, -1))


class AvgMaxPool(nn.Module):
    """Mean of average and max pooling; keeps the width (timm's ``avgmax``)."""

    feature_multiplier = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * (x.mean(dim=(-2, -1)) + x.amax(dim=(-2, -1)))


class CatAvgMaxPool(nn.Module):
    """Average and max pooling concatenated, doubling the width (fastai's concat pooling,
    timm's ``catavgmax``): ``[avg, max]`` along the channel axis."""

    feature_multiplier = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(dim=(-2, -1)), x.amax(dim=(-2, -1))], dim=1)


class GeM(nn.Module):
    """Generalized mean pooling, ``mean(clamp(x, eps) ** p) ** (1 / p)`` (Radenović et al.,
    2018). ``p = 1`` is average pooling and ``p -> inf`` tends to max pooling; ``p`` is
    learned, starting at 3.

    Features are clamped at ``eps`` because the power mean needs positive inputs (true for
    ReLU backbones; negative activations, e.g. after a LayerNorm, are treated as ~0). The power
    runs in float32 so ``x ** p`` cannot overflow float16 under autocast.
    """

    feature_multiplier = 1

    def __init__(self, p: float = 3.0, eps: float = 1e-6, trainable: bool = True) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)), requires_grad=trainable)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.p.float()
        pooled = x.float().clamp(min=self.eps).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)
        return pooled.to(x.dtype)

    def extra_repr(self) -> str:
        return f"p={self.p.item():.4g}, eps={self.eps}"


POOLINGS: dict[str, type[nn.Module]] = {
    "avg": AvgPool,
    "max": MaxPool,
    "avgmax": AvgMaxPool,
    "catavgmax": CatAvgMaxPool,
    "gem": GeM,
}

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "prelu": nn.PReLU,
    "leaky_relu": nn.LeakyReLU,
    "mish": nn.Mish,
}


def _unknown(key: str, what: str, name: str, known: Sequence[str]) -> PodiumInputError:
    close = difflib.get_close_matches(name, list(known), n=5, cutoff=0.6)
    hint = f" Close names: {', '.join(close)}." if close else ""
    listing = f" Known: {', '.join(known)}." if len(known) <= 20 else ""
    return PodiumInputError(f"config key {key}: unknown {what} {name!r}.{hint}{listing}")


def _lookup(registry: dict[str, type[nn.Module]], key: str, what: str,
            name: str) -> type[nn.Module]:
    if name not in registry:
        raise _unknown(key, what, name, list(registry))
    return registry[name]


def check_backbone(backbone: str, key: str = "models.<name>.backbone") -> None:
    """Refuse a name timm does not know (no network: pretrained weights are not needed to
    know the name), with the close names it might have meant."""
    if not isinstance(backbone, str) or not timm.is_model(backbone):
        raise _unknown(key, "timm model", str(backbone), timm.list_models())


def check_pooling(pooling: str, key: str = "models.<name>.pooling") -> None:
    """Refuse a pooling name the head does not offer."""
    _lookup(POOLINGS, key, "pooling", pooling)


class ClassifierHead(nn.Module):
    """Pooling, then ``hidden`` FC blocks, then the final Linear to ``num_classes`` logits.

    Each hidden block is ``Linear(bias=False) -> BatchNorm1d -> activation`` (the BatchNorm
    neck common in Kaggle solutions; ``norm=False`` gives ``Linear -> activation``; with
    BatchNorm a training batch needs at least two rows). ``dropout`` is applied to the input of
    every Linear, so with no hidden layers this is timm's ``drop_rate`` before the classifier.

    Accepts a backbone's unpooled output: ``(B, C, H, W)`` maps (``input_fmt="NCHW"``),
    ``(B, H, W, C)`` maps (``input_fmt="NHWC"``, e.g. Swin), or ``(B, N, C)`` token sequences
    (ViT, Mixer), which are pooled over their tokens after dropping ``num_prefix_tokens``
    (class/register tokens), as timm's own ``avg`` pool does.
    """

    def __init__(
        self, in_features: int, num_classes: int, pooling: str = "avg", dropout: float = 0.0,
        hidden: Sequence[int] = (), activation: str | type[nn.Module] = "relu",
        norm: bool = True, input_fmt: str = "NCHW", num_prefix_tokens: int = 0,
    ) -> None:
        super().__init__()
        if input_fmt not in ("NCHW", "NHWC"):
            raise ValueError(f"input_fmt must be 'NCHW' or 'NHWC', not {input_fmt!r}")
        _check_head_args(num_classes, dropout, hidden)
        pool_cls = _lookup(POOLINGS, "models.<name>.pooling", "pooling", pooling)
        act_cls = (_lookup(ACTIVATIONS, "models.<name>.activation", "activation", activation)
                   if isinstance(activation, str) else activation)
        self.input_fmt = input_fmt
        self.num_prefix_tokens = num_prefix_tokens
        self.pool = pool_cls()
        width = in_features * pool_cls.feature_multiplier
        layers: list[nn.Module] = []
        for size in hidden:
            layers += [nn.Dropout(dropout), nn.Linear(width, size, bias=not norm)]
            if norm:
                layers.append(nn.BatchNorm1d(size))
            layers.append(act_cls())
            width = size
        self.neck = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(width, num_classes)
        self.num_features = width

    def _as_nchw(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim == 4:
            return x.permute(0, 3, 1, 2) if self.input_fmt == "NHWC" else x
        if x.ndim == 3:  # (B, N, C) tokens -> (B, C, N, 1)
            return x[:, self.num_prefix_tokens:].transpose(1, 2).unsqueeze(-1)
        raise ValueError(
            f"ClassifierHead needs unpooled features (B, C, H, W), (B, H, W, C) or (B, N, C); "
            f"got shape {tuple(x.shape)}"
        )

    def forward_pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled and neck features before dropout and the classifier (embeddings)."""
        return self.neck(self.pool(self._as_nchw(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.forward_pooled(x)))


def _check_head_args(num_classes: int, dropout: float, hidden: Sequence[int]) -> None:
    if not isinstance(num_classes, int) or num_classes < 1:
        raise PodiumInputError(f"num_classes must be a positive integer, not {num_classes!r}")
    if not 0.0 <= dropout < 1.0:
        raise PodiumInputError(
            f"config key models.<name>.dropout: must be in [0, 1), not {dropout!r}"
        )
    bad = [h for h in hidden if isinstance(h, bool) or not isinstance(h, int) or h < 1]
    if bad:
        raise PodiumInputError(
            f"config key models.<name>.hidden: widths must be positive integers, not {bad!r}"
        )


class Classifier(nn.Module):
    """A headless timm backbone and a :class:`ClassifierHead`, kept as separate attributes so
    a trainer can build optimiser groups or freeze ``backbone`` alone."""

    def __init__(self, backbone: nn.Module, head: ClassifierHead) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled (and neck) embeddings, e.g. for kNN or stacking."""
        return self.head.forward_pooled(self.backbone(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def build_classifier(
    backbone: str, num_classes: int, in_chans: int, pretrained: bool = False,
    pooling: str = "avg", dropout: float = 0.0, hidden: Sequence[int] | None = None,
    activation: str = "relu", norm: bool = True,
) -> Classifier:
    """A timm backbone without its pooling and classifier, under a :class:`ClassifierHead`.

    All config is checked before the backbone is built, so a typo fails fast; ``pretrained``
    needs network access and stays off by default (timm adapts the first conv for
    ``in_chans != 3``).
    """
    check_backbone(backbone)
    if not isinstance(in_chans, int) or in_chans < 1:
        raise PodiumInputError(f"in_chans must be a positive integer, not {in_chans!r}")
    hidden = tuple(hidden or ())
    _check_head_args(num_classes, dropout, hidden)
    _lookup(POOLINGS, "models.<name>.pooling", "pooling", pooling)
    if isinstance(activation, str):
        _lookup(ACTIVATIONS, "models.<name>.activation", "activation", activation)
    try:
        body = timm.create_model(backbone, pretrained=pretrained, num_classes=0,
                                 global_pool="", in_chans=in_chans)
    except (AssertionError, ValueError, NotImplementedError) as err:
        raise PodiumInputError(
            f"config key models.<name>.backbone: timm cannot build {backbone!r} without its "
            f"pooling (num_classes=0, global_pool=''), which a custom head needs: {err}"
        ) from err
    # head_hidden_size: models such as MobileNetV3 keep a 1x1 conv head wider than
    # num_features even with global_pool=''.
    width = getattr(body, "head_hidden_size", None) or body.num_features
    # Swin-like models return NHWC maps; 3-D token outputs ('NLC') are told apart by ndim.
    input_fmt = "NHWC" if str(getattr(body, "output_fmt", "NCHW")) == "NHWC" else "NCHW"
    head = ClassifierHead(
        width, num_classes, pooling=pooling, dropout=dropout, hidden=hidden,
        activation=activation, norm=norm, input_fmt=input_fmt,
        num_prefix_tokens=int(getattr(body, "num_prefix_tokens", 0) or 0),
    )
    return Classifier(body, head)
