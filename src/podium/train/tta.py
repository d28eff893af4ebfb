"""Test-time augmentation for every task: named D4 views and scales done on the device,
albumentations pipelines done per image; each view turns its own predictions back onto the
original image, and the views are merged by mean or geometric mean.

Named views (flips, quarter turns, transposes) cost one tensor op per batch, so they run on
the GPU after transfer; an albumentations pipeline in config (its own serialised form) covers
anything else, such as a deterministic crop or a CLAHE variant, and runs in the loader.
A view's image-level predictions (class probabilities, values) need no turning back; per-pixel
predictions (``N x K x H x W`` masks, later heatmaps) are resized back from the view's scale
and turned by the inverse D4 op (:meth:`TtaView.invert`), so one engine serves classification
and segmentation. Pipelines move pixels in ways that cannot be undone, so tasks that predict
per pixel take named views and scales only (``build_tta(..., per_pixel=True)``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
# Each view's inverse: the quarter turns undo each other, every other D4 view is an involution.
INVERSE_VIEW = {name: name for name in NAMED_VIEWS} | {"rot90": "rot270", "rot270": "rot90"}
SWAPS_AXES = frozenset({"rot90", "rot270", "transpose", "antitranspose"})
GROUPS = {"d4": list(NAMED_VIEWS), "flips": ["identity", "hflip", "vflip", "hvflip"]}
MERGES = ("mean", "geomean")


@dataclass(frozen=True)
class TtaView:
    """One test-time view: a named tensor op at a scale, or an albumentations pipeline."""

    name: str
    scale: float = 1.0
    pipeline: dict | None = None  # albumentations serialised form, applied per image

    @property
    def label(self) -> str:
        """How metrics.json names the view: ``hflip``, ``hflip@1.5``, ``pipeline``."""
        return self.name if self.scale == 1.0 else f"{self.name}@{self.scale:g}"

    def apply(self, batch: torch.Tensor) -> torch.Tensor:
        """The named op, then the scale (bilinear) on an ``N x C x H x W`` float batch."""
        out = NAMED_VIEWS[self.name](batch) if self.pipeline is None else batch
        if self.scale != 1.0:
            size = [max(1, round(s * self.scale)) for s in out.shape[2:]]
            out = F.interpolate(out, size=size, mode="bilinear", align_corners=False)
        return out

    def invert(self, predictions: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """This view's predictions on the original ``size`` (H, W) image. Image-level
        predictions (``N x K``) are the same for every view; per-pixel ones (``N x K x h x w``)
        are resized back from the scale (bilinear), then turned by the inverse D4 op."""
        if predictions.ndim < 4:
            return predictions
        if self.pipeline is not None:
            raise PodiumInputError(
                "An albumentations TTA pipeline cannot be turned back on per-pixel "
                "predictions; use the named views and tta_scales.")
        height, width = size
        viewed = (width, height) if self.name in SWAPS_AXES else (height, width)
        if tuple(predictions.shape[2:]) != viewed:
            predictions = F.interpolate(predictions, size=viewed, mode="bilinear",
                                        align_corners=False)
        return NAMED_VIEWS[INVERSE_VIEW[self.name]](predictions)


TTA_KEY = "models.<name>.tta"


def _check_name(name: str, key: str = TTA_KEY) -> None:
    known = [*NAMED_VIEWS, *GROUPS]
    if not isinstance(name, str) or name not in known:
        hint = did_you_mean(name, known, cutoff=0.4) if isinstance(name, str) else ""
        raise PodiumInputError(
            f"config key {key}: unknown TTA view {name!r} (not a D4 view).{hint} Known: "
            f"{', '.join(known)}, or an albumentations pipeline ({{transform: ...}})."
        )


def build_tta(entries: list[str | dict] | str, scales: list[float] | None = None,
              key: str = TTA_KEY, per_pixel: bool = False) -> list[TtaView]:
    """Views for every entry (names, groups such as ``d4``, or albumentations pipelines)
    at every scale; duplicates are dropped, identity at scale 1 first when present. ``key``
    names the config key in errors (``models.resnet.tta``). ``per_pixel`` tasks (masks) take
    only views that :meth:`TtaView.invert` can turn back: the named views, at any scale."""
    from podium.train.augment import build_augmentation

    entries = [entries] if isinstance(entries, str | dict) else list(entries)
    if not entries:
        raise PodiumInputError(f"config key {key}: no views; use [identity] for no TTA.")
    names: list[str | dict] = []
    for i, entry in enumerate(entries):
        if isinstance(entry, dict) and per_pixel:
            raise PodiumInputError(
                f"config key {key}[{i}]: an albumentations pipeline cannot be turned back on "
                f"masks. A task that predicts per pixel takes the D4 views "
                f"{', '.join(NAMED_VIEWS)}, the groups {', '.join(GROUPS)}, and tta_scales.")
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


def check_pixel_tta(entries: list[str | dict] | str, scales: list[float] | None = None,
                    key: str = TTA_KEY) -> None:
    """The config check's look-up of a per-pixel model's ``tta`` and ``tta_scales``: every
    view must turn its maps back (:func:`build_tta` with ``per_pixel``)."""
    build_tta(entries, scales, key, per_pixel=True)


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


def mean_over_views(predict: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                    views: Sequence[TtaView]) -> torch.Tensor:
    """Mean over ``views`` of ``predict`` on each view of ``images``, each turned back onto
    the original images (:meth:`TtaView.invert`). Segmentation averages logits this way: it
    works for sigmoid and softmax heads alike, matches how tiles are blended, and for a
    softmax it is the renormalised geometric mean of the views' probabilities."""
    if not views:
        raise PodiumInputError(f"No TTA views given; choose from {', '.join(NAMED_VIEWS)}.")
    size = (images.shape[2], images.shape[3])
    total = None
    for view in views:
        viewed = view.apply(images)
        out = predict(viewed)
        if out.ndim == 4 and out.shape[2:] != viewed.shape[2:]:
            raise PodiumInputError(
                f"The model returned predictions of shape {tuple(out.shape)} for input of "
                f"shape {tuple(viewed.shape)}; TTA views are turned back on N x K x H x W "
                "maps of the input's H and W (upsample the network's output to its input "
                "size).")
        out = view.invert(out, size)
        total = out.clone() if total is None else total.add_(out)
    return total / len(views)
