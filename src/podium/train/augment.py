"""Augmentation pipelines from albumentations' own serialised form (train and TTA).

albumentations is imported when a pipeline is built, not with this module: it costs a job
about a CPU-second to import, and a training job without augmentation, every test-prediction
job and the jobs that only read a model's settings never build one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from podium.errors import PodiumInputError, did_you_mean

if TYPE_CHECKING:
    import albumentations as A


def _transform_names(node: Any) -> list[str]:
    if isinstance(node, dict):
        names = [node["__class_fullname__"]] if "__class_fullname__" in node else []
        return names + [n for child in node.values() for n in _transform_names(child)]
    if isinstance(node, list):
        return [n for child in node for n in _transform_names(child)]
    return []


def build_augmentation(serialized: dict | None, seed: int,
                       key: str = "models.<name>.augment") -> A.Compose | None:
    """Deserialise ``{"transform": {...}}`` as written by ``albumentations.to_dict``; ``key``
    names the config key in errors (``models.resnet.augment``)."""
    if not serialized:
        return None
    import albumentations as A
    from albumentations.core.serialization import SERIALIZABLE_REGISTRY

    known = set(SERIALIZABLE_REGISTRY)
    for name in _transform_names(serialized):
        if name.split(".")[-1] not in known and name not in known:
            hint = did_you_mean(name, known, cutoff=0.6)
            raise PodiumInputError(
                f"config key {key}: albumentations has no transform {name!r}.{hint}"
            )
    try:
        pipeline = A.from_dict(serialized)
    except Exception as err:  # pydantic, KeyError, TypeError: albumentations' own words
        words = "; ".join(line.strip() for line in str(err).splitlines()
                          if line.strip() and not line.strip().startswith("For further"))
        raise PodiumInputError(
            f"config key {key}: albumentations cannot build this pipeline "
            f"({type(err).__name__}: {words[:400]}). Write it as albumentations.to_dict "
            "does: {transform: {__class_fullname__: Compose, transforms: [...]}}."
        ) from err
    pipeline.set_random_seed(seed)
    return pipeline
