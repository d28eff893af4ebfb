"""Where and how a fold computes: the device, mixed precision, memory format and loaders.

On a CUDA card podium trains in bf16 autocast (fp16 with loss scaling on cards without bf16),
keeps the model and batches channels_last (tensor cores read NHWC without transposes), and
feeds the card from pinned memory through loader workers tied to the job's threads. On the CPU
it trains in fp32 with no workers: the packed arrays need no decoding, and worker processes
would only compete with torch's threads for the same cores. ``models.<name>.precision`` and
``models.<name>.channels_last`` override the choice.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from podium.errors import PodiumInputError
from podium.train.data import normalize

PRECISIONS = ("auto", "bf16", "fp16", "fp32")


def pick_device() -> torch.device:
    """CUDA when there is a GPU (the one podium pinned this job to), else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def amp_dtype_for(precision: str, device: torch.device, key: str) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``; None means plain fp32.

    ``auto`` is bf16 on cards that have it (no loss scaling needed), fp16 on older cards and
    fp32 on the CPU. A precision the device cannot run is an error, not a silent fallback, so
    a run never reports numbers from a precision other than the one its config names."""
    if precision not in PRECISIONS:
        raise PodiumInputError(
            f"config key {key}: unknown precision {precision!r}; use one of "
            f"{', '.join(PRECISIONS)}.")
    cuda = device.type == "cuda"
    if precision == "auto":
        if not cuda:
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision == "fp32":
        return None
    if precision == "fp16" and not cuda:
        raise PodiumInputError(
            f"config key {key}: fp16 needs a CUDA GPU and this job runs on the CPU; use bf16 "
            "(CPU autocast), fp32 or auto.")
    if precision == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        raise PodiumInputError(
            f"config key {key}: {torch.cuda.get_device_name()} has no bf16; use fp16 or auto.")
    return torch.bfloat16 if precision == "bf16" else torch.float16


@dataclass
class Runtime:
    """The device and precision a fold runs with."""

    device: torch.device
    amp_dtype: torch.dtype | None
    loader_args: dict
    channels_last: bool = False

    @classmethod
    def detect(cls, threads: int, precision: str = "auto", channels_last: bool = True,
               key: str = "models.<name>.precision") -> Runtime:
        """The runtime for a job given ``threads`` cores; CUDA pins loader memory and runs
        ``threads - 1`` worker processes beside the main one."""
        device = pick_device()
        cuda = device.type == "cuda"
        if cuda:  # packed arrays give every batch the same shape: tune convolutions once
            torch.backends.cudnn.benchmark = True
        return cls(device, amp_dtype_for(precision, device, key),
                   {"num_workers": max(0, threads - 1) if cuda else 0, "pin_memory": cuda},
                   channels_last=channels_last and cuda)

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def precision(self) -> str:
        """What actually runs: ``bf16``, ``fp16`` or ``fp32``."""
        return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(self.amp_dtype, "fp32")

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.amp_dtype,
                              enabled=self.amp_dtype is not None)

    def model(self, model: torch.nn.Module) -> torch.nn.Module:
        """Move a model to the device, in the memory format batches will arrive in."""
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def batch(self, images: torch.Tensor) -> torch.Tensor:
        """An ``N x H x W x C`` integer batch to the float ``N x C x H x W`` the model takes:
        transferred as integers (4x less than float32), permuted on the device (NHWC memory
        is already channels_last, so that costs nothing there) and scaled to [-1, 1]."""
        images = normalize(images.to(self.device, non_blocking=True).permute(0, 3, 1, 2))
        return images.contiguous(
            memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
