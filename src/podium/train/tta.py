"""Test-time augmentation: named D4 views and scales done on the device, albumentations
pipelines done per image, merged by mean or geometric mean.

Named views (flips, quarter turns, transposes) cost one tensor op per batch, so they run on
the GPU after transfer; an albumentations pipeline in config (its own serialised form) covers
anything else, such as a deterministic crop or a CLAHE variant, and runs in the loader.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from podium.errors import PodiumInputError, did_you_mean

TensorView = Callable[[torch.Tensor], torch.Tensor]

NAMED_VIEWS: dict[str, TensorView] = {
    "identity": lambda x: x,
    "hflip": lambda x: torch.flip(x, (3,)),
    "vflip": lambda x: torch.flip(x, (2,)),
    "hvflip": lambda x: torch.flip(x, (2, 3)),  # = a half turn
    "rot90": lambda x: torch.rot90(x, 1, (2, 3)),
    "rot270": lambda x: torch.rot90(x, 3, (2, 3)),
    "transpose": lambda x: x.transpose(2, 3),
    "antitranspose": lambda x: torch.flip(x.transpose(2, 3), (2, 3)),
}
GROUPS = {"d4": list(NAMED_VIEWS), "flips": ["identity", "hflip", "vflip", "hvflip"]}
MERGES = ("mean", "geomean")


@dataclass(frozen=True)
class TtaView:
    """One test-time view: a named tensor op at a scale, or an albumentations pipeline."""

    name: str
    scale: float = 1.0
    pipeline: dict | None = None  # albumentations serialised form, applied per image

    def apply(self, batch: torch.Tensor) -> torch.Tensor:
        """The named op, then the scale (bilinear) on an ``N x C x H x W`` float batch."""
        out = NAMED_VIEWS[self.name](batch) if self.pipeline is None else batch
        if self.scale != 1.0:
            size = [max(1, round(s * self.scale)) for s in out.shape[2:]]
            out = F.interpolate(out, size=size, mode="bilinear", align_corners=False)
        return out


TTA_KEY = "models.<name>.tta"


def _check_name(name: str, key: str = TTA_KEY) -> None:
    known = [*NAMED_VIEWS, *GROUPS]
    if not isinstance(name, str) or name not in known:
        hint = did_you_mean(name, known, cutoff=0.4) if isinstance(name, str) else ""
        raise PodiumInputError(
            f"config key {key}: unknown TTA view {name!r}.{hint} Known: "
            f"{', '.join(known)}, or an albumentations pipeline ({{transform: ...}})."
        )


def build_tta(entries: list[str | dict], scales: list[float] | None = None,
              key: str = TTA_KEY) -> list[TtaView]:
    """Views for every entry (names, groups such as ``d4``, or albumentations pipelines)
    at every scale; duplicates are dropped, identity at scale 1 first when present. ``key``
    names the config key in errors (``models.resnet.tta``)."""
    from podium.train.augment import build_augmentation

    names: list[str | dict] = []
    for i, entry in enumerate(entries):
        if isinstance(entry, dict):
            build_augmentation(entry, 0, key=f"{key}[{i}]")  # validate now, before training
            names.append(entry)
            continue
        _check_name(entry, key)
        names += GROUPS.get(entry, [entry])
    views: list[TtaView] = []
    for scale in scales or [1.0]:
        if scale <= 0:
            raise PodiumInputError(f"config key {key}_scales: {scale} is not > 0.")
        for entry in names:
            view = (TtaView("pipeline", scale, entry) if isinstance(entry, dict)
                    else TtaView(entry, scale))
            if view not in views:
                views.append(view)
    return views


def check_merge(how: str) -> None:
    if how not in MERGES:
        raise PodiumInputError(
            f"config key models.<name>.tta_merge: {how!r} is not one of {', '.join(MERGES)}."
        )


def merge_views(probas: list[torch.Tensor], how: str, output_kind: str) -> torch.Tensor:
    """Mean of the views' probabilities, or their geometric mean (renormalised over classes
    for softmax outputs), which punishes views that disagree. Predicted values (regression,
    ordinal) are always averaged."""
    stacked = torch.stack(probas)
    if how == "mean" or output_kind == "value":
        return stacked.mean(0)
    merged = stacked.clamp_min(1e-12).log().mean(0).exp()
    return merged / merged.sum(dim=1, keepdim=True) if output_kind == "softmax" else merged
