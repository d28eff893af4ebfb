"""Backbones by name from timm's registry, with a clear error for names timm does not know."""

from __future__ import annotations

import difflib

import timm
import torch

from podium.errors import PodiumInputError


def build_model(
    backbone: str, num_classes: int, in_chans: int, pretrained: bool = False,
    drop_rate: float = 0.0,
) -> torch.nn.Module:
    """A timm classifier; ``pretrained`` needs network access and stays off by default."""
    if not timm.is_model(backbone):
        close = difflib.get_close_matches(backbone, timm.list_models(), n=5, cutoff=0.6)
        hint = f" Close names: {', '.join(close)}." if close else ""
        raise PodiumInputError(
            f"config key models.<name>.backbone: timm has no model {backbone!r}.{hint}"
        )
    return timm.create_model(
        backbone, pretrained=pretrained, num_classes=num_classes, in_chans=in_chans,
        drop_rate=drop_rate,
    )
