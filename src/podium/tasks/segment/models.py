"""Segmentation models by name: an segmentation_models_pytorch decoder on a timm encoder.

Configs name an architecture (``unet``, ``fpn``, ...) and any timm model as encoder; smp's
"tu-" universal encoder turns the timm model into a feature pyramid, so every timm CNN family
is available without smp shipping its own copy. The model is wrapped in :class:`Segmenter`,
which pads inputs up to the size the architecture needs and crops the logits back, so callers
never have to know an architecture's stride.

Input sizes smp 0.6.0 accepts (found by running each architecture, see the tests):

* ``unet``, ``unetplusplus``, ``fpn``, ``linknet``: height and width divisible by 32 (the
  depth-5 encoder's stride). smp's Unet interpolates its skips and runs at any size for most
  encoders, but not for DLA or TResNet, so 32 is kept for it too.
* ``deeplabv3plus``: divisible by 16; the encoder's last stage is dilated (output stride 16).
* ``pan``: divisible by 16 (dilated like DeepLabV3+) and at least 128: its feature pyramid
  attention halves the stride-16 map three times, so that map needs 8 pixels or more.

``pan`` and ``deeplabv3plus`` need an encoder timm can dilate (``output_stride=16``): ResNet,
EfficientNet, ConvNeXt, RegNet, NFNet, Xception, MobileViT and similar can; DenseNet, VGG, DLA,
TResNet, EfficientViT and Swin cannot. Encoders without a multi-scale pyramid (ViT, DeiT) and
those with a fixed input size (Swin) fail with every architecture. All of these raise
:class:`~podium.errors.PodiumInputError` when the model is built, not at the first batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import segmentation_models_pytorch as smp
import timm
import torch
import torch.nn.functional as F
from torch import nn

from podium.errors import PodiumInputError, did_you_mean

MODEL_KEY = "models.<name>"
TIMM_PREFIX = "tu-"
BUILD_ERRORS = (ValueError, TypeError, AssertionError, RuntimeError, NotImplementedError,
                KeyError, IndexError)


@dataclass(frozen=True)
class ArchSpec:
    """An smp architecture and the input sizes it runs at.

    ``multiple`` divides every height and width fed to the smp model, ``min_size`` is the
    smallest side, and ``dilated`` says the encoder's last stage must be dilated to output
    stride 16 (the architecture is built with ``encoder_output_stride=16``).
    """

    model: type[nn.Module]
    multiple: int
    min_size: int
    dilated: bool = False


ARCHS: dict[str, ArchSpec] = {
    "unet": ArchSpec(smp.Unet, 32, 32),
    "unetplusplus": ArchSpec(smp.UnetPlusPlus, 32, 32),
    "fpn": ArchSpec(smp.FPN, 32, 32),
    "linknet": ArchSpec(smp.Linknet, 32, 32),
    "pan": ArchSpec(smp.PAN, 16, 128, dilated=True),
    "deeplabv3plus": ArchSpec(smp.DeepLabV3Plus, 16, 32, dilated=True),
}
ARCH_ALIASES = {"unet++": "unetplusplus", "deeplabv3+": "deeplabv3plus"}


def _arch_name(arch: str, key: str) -> str:
    """The registry name of ``arch``: case, ``_``, ``-`` and spaces are ignored."""
    if not isinstance(arch, str):
        raise PodiumInputError(f"config key {key}.arch: expected an architecture name, "
                               f"got {arch!r}. Known: {', '.join(ARCHS)}.")
    name = "".join(ch for ch in arch.lower() if ch not in "_- ")
    name = ARCH_ALIASES.get(name, name)
    if name not in ARCHS:
        raise PodiumInputError(
            f"config key {key}.arch: unknown segmentation architecture {arch!r}."
            f"{did_you_mean(name, ARCHS)} Known: {', '.join(ARCHS)}."
        )
    return name


def _encoder_name(encoder: str, key: str) -> str:
    """The timm model name of ``encoder``, with or without smp's ``tu-`` prefix."""
    check_encoder(encoder, f"{key}.encoder")
    return encoder.removeprefix(TIMM_PREFIX)


def check_encoder(encoder: str, key: str = "models.<name>.backbone") -> None:
    """The config check's look-up of a segmentation model's encoder (its ``backbone`` key): a
    timm model name, with or without smp's ``tu-`` prefix."""
    if not isinstance(encoder, str):
        raise PodiumInputError(f"config key {key}: expected a timm model name, got {encoder!r}.")
    name = encoder.removeprefix(TIMM_PREFIX)
    if not timm.is_model(name):
        raise PodiumInputError(
            f"config key {key}: unknown timm model {encoder!r}."
            f"{did_you_mean(name, timm.list_models())} Any name from timm.list_models() works, "
            "with or without smp's 'tu-' prefix.")


def _positive(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PodiumInputError(f"{what} must be a positive integer, not {value!r}")
    return value


def required_multiple(arch: str, encoder: str, key: str = MODEL_KEY) -> int:
    """What the smp model needs height and width divisible by (32, or 16 for the dilated
    ``pan`` and ``deeplabv3plus``); :class:`Segmenter` pads to it, so this matters only to
    callers choosing crop sizes that need no padding."""
    _encoder_name(encoder, key)
    return ARCHS[_arch_name(arch, key)].multiple


def min_input_size(arch: str, encoder: str, key: str = MODEL_KEY) -> int:
    """The smallest height and width the smp model runs at (128 for ``pan``, else 32)."""
    _encoder_name(encoder, key)
    return ARCHS[_arch_name(arch, key)].min_size


def pad_to_multiple(images: torch.Tensor, multiple: int, min_size: int = 1,
                    mode: str = "reflect") -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    """``images`` (``... x H x W``) padded on both sides to sides divisible by ``multiple`` and
    at least ``min_size``, and the padding ``(left, right, top, bottom)`` for :func:`unpad`.

    Reflection keeps image statistics at the border; where a side is too small to reflect
    (padding not smaller than the side), edge pixels are repeated instead.
    """
    height, width = images.shape[-2:]
    new_h = max(-(-height // multiple) * multiple, -(-min_size // multiple) * multiple)
    new_w = max(-(-width // multiple) * multiple, -(-min_size // multiple) * multiple)
    top, left = (new_h - height) // 2, (new_w - width) // 2
    padding = (left, new_w - width - left, top, new_h - height - top)
    if not any(padding):
        return images, padding
    if mode == "reflect" and (max(padding[:2]) >= width or max(padding[2:]) >= height):
        mode = "replicate"
    if mode == "constant":
        return F.pad(images, padding), padding
    # reflect/replicate pad only batched (N x C x H x W) input.
    flat = images.reshape(-1, 1, height, width)
    padded = F.pad(flat, padding, mode=mode)
    return padded.reshape(*images.shape[:-2], new_h, new_w), padding


def unpad(outputs: torch.Tensor, padding: tuple[int, int, int, int]) -> torch.Tensor:
    """``outputs`` cropped back to the size before :func:`pad_to_multiple`."""
    left, right, top, bottom = padding
    height, width = outputs.shape[-2:]
    return outputs[..., top:height - bottom, left:width - right]


class Segmenter(nn.Module):
    """An smp model that takes any input size: inputs are padded to the size the architecture
    needs and logits cropped back, so the output is ``N x n_classes x H x W`` at the input's
    ``H x W``. Inputs that already fit pass straight through. ``encoder``, ``decoder`` and
    ``segmentation_head`` expose smp's parts for optimiser groups and freezing.
    """

    def __init__(self, model: nn.Module, multiple: int, min_size: int) -> None:
        super().__init__()
        self.model = model
        self.multiple = multiple
        self.min_size = min_size

    @property
    def encoder(self) -> nn.Module:
        return self.model.encoder

    @property
    def decoder(self) -> nn.Module:
        return self.model.decoder

    @property
    def segmentation_head(self) -> nn.Module:
        return self.model.segmentation_head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        padded, padding = pad_to_multiple(images, self.multiple, self.min_size)
        return unpad(self.model(padded), padding)

    def extra_repr(self) -> str:
        return f"multiple={self.multiple}, min_size={self.min_size}"


def _cannot_build(arch: str, encoder: str, spec: ArchSpec, err: Exception,
                  key: str) -> PodiumInputError:
    problem = f"{type(err).__name__}: {err}".strip().rstrip(":")
    if "downsampling pattern" in str(err):
        why = ("the encoder has no multi-scale feature pyramid (ViT-style models keep one "
               "scale); pick a CNN, ConvNeXt or other hierarchical encoder")
    elif spec.dilated and ("output_stride" in str(err) or isinstance(err, AssertionError)):
        why = (f"{arch} dilates the encoder's last stage (output stride 16), which this timm "
               f"model does not support; use unet, unetplusplus, fpn or linknet with it, or a "
               f"ResNet, EfficientNet, ConvNeXt or RegNet encoder")
    else:
        why = "pick another encoder or architecture"
    return PodiumInputError(
        f"config key {key}: segmentation_models_pytorch cannot build {arch} with timm encoder "
        f"{encoder!r}: {why}. ({problem})"
    )


def _check_runs(model: Segmenter, in_chans: int, arch: str, encoder: str, spec: ArchSpec,
                key: str) -> None:
    """One small forward pass, so encoders that build but cannot run (e.g. Swin's fixed
    input size) fail here instead of at the first training batch."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, in_chans, spec.min_size, spec.min_size))
    except BUILD_ERRORS as err:
        problem = f"{type(err).__name__}: {err}"
        raise PodiumInputError(
            f"config key {key}: {arch} with timm encoder {encoder!r} builds but fails on a "
            f"{spec.min_size}x{spec.min_size} image; encoders with a fixed input size (Swin, "
            f"ViT) are not supported, pick a CNN or ConvNeXt encoder. ({problem})"
        ) from err
    finally:
        model.train(was_training)


def build_segmenter(arch: str, encoder: str, n_classes: int, in_chans: int,
                    pretrained: bool = False, key: str = MODEL_KEY) -> Segmenter:
    """The smp architecture ``arch`` on timm encoder ``encoder`` as a :class:`Segmenter`.

    ``n_classes`` is the number of logit channels (1 for a binary mask). ``pretrained`` loads
    timm's weights for the encoder and needs network access, so it stays off by default (timm
    adapts the first conv for ``in_chans != 3``). Names, sizes and encoder/architecture
    combinations are checked here, with ``key`` naming the config key in errors.
    """
    name = _arch_name(arch, key)
    timm_name = _encoder_name(encoder, key)
    _positive(n_classes, f"config key {key}: n_classes")
    _positive(in_chans, f"config key {key}: in_chans")
    spec = ARCHS[name]
    extra = {"encoder_output_stride": 16} if spec.dilated else {}
    try:
        model = spec.model(encoder_name=TIMM_PREFIX + timm_name,
                           encoder_weights=True if pretrained else None,
                           in_channels=in_chans, classes=n_classes, **extra)
    except BUILD_ERRORS as err:
        raise _cannot_build(name, timm_name, spec, err, key) from err
    segmenter = Segmenter(model, spec.multiple, spec.min_size)
    _check_runs(segmenter, in_chans, name, timm_name, spec, key)
    return segmenter
