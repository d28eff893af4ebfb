"""Augmentation pipelines from albumentations' own serialised form, and test-time flips."""

from __future__ import annotations

import difflib
from typing import Any

import albumentations as A
import torch
from albumentations.core.serialization import SERIALIZABLE_REGISTRY

from podium.errors import PodiumInputError


def _transform_names(node: Any) -> list[str]:
    if isinstance(node, dict):
        names = [node["__class_fullname__"]] if "__class_fullname__" in node else []
        return names + [n for child in node.values() for n in _transform_names(child)]
    if isinstance(node, list):
        return [n for child in node for n in _transform_names(child)]
    return []


def build_augmentation(serialized: dict | None, seed: int) -> A.Compose | None:
    """Deserialise ``{"transform": {...}}`` as written by ``albumentations.to_dict``."""
    if not serialized:
        return None
    known = set(SERIALIZABLE_REGISTRY)
    for name in _transform_names(serialized):
        if name.split(".")[-1] not in known and name not in known:
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise PodiumInputError(
                f"config key models.<name>.augment: albumentations has no transform {name!r}.{hint}"
            )
    pipeline = A.from_dict(serialized)
    pipeline.set_random_seed(seed)
    return pipeline


TTA_FLIPS: dict[str, tuple[int, ...]] = {"identity": (), "hflip": (3,), "vflip": (2,),
                                         "hvflip": (2, 3)}


def check_tta(names: list[str]) -> None:
    """Fail early on a TTA name that is not registered."""
    for name in names:
        if name not in TTA_FLIPS:
            raise PodiumInputError(
                f"config key models.<name>.tta: unknown TTA {name!r}; "
                f"known: {', '.join(TTA_FLIPS)}."
            )


def apply_tta(batch: torch.Tensor, name: str) -> torch.Tensor:
    """Flip an ``N x C x H x W`` batch as the TTA name says."""
    dims = TTA_FLIPS[name]
    return torch.flip(batch, dims) if dims else batch
