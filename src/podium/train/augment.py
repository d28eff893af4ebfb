"""Augmentation pipelines from albumentations' own serialised form (train and TTA)."""

from __future__ import annotations

from typing import Any

import albumentations as A
from albumentations.core.serialization import SERIALIZABLE_REGISTRY

from podium.errors import PodiumInputError, did_you_mean


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
            hint = did_you_mean(name, known, cutoff=0.6)
            raise PodiumInputError(
                f"config key models.<name>.augment: albumentations has no transform {name!r}.{hint}"
            )
    pipeline = A.from_dict(serialized)
    pipeline.set_random_seed(seed)
    return pipeline
