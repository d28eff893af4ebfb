"""Device, precision and loss checks of a fold's runtime (CPU here; CUDA on a lent GPU)."""

from __future__ import annotations

import math

import pytest
import torch

from podium.errors import PodiumInputError
from podium.train.fit import LossLog, NonFiniteLoss
from podium.train.runtime import Runtime, amp_dtype_for

CPU = torch.device("cpu")


@pytest.mark.parametrize(("precision", "dtype"), [("auto", None), ("fp32", None),
                                                  ("bf16", torch.bfloat16)])
def test_cpu_precisions(precision, dtype):
    assert amp_dtype_for(precision, CPU, "models.m.precision") is dtype


def test_fp16_on_the_cpu_and_unknown_precisions_name_the_key():
    with pytest.raises(PodiumInputError, match=r"models\.m\.precision: fp16 needs a CUDA GPU"):
        amp_dtype_for("fp16", CPU, "models.m.precision")
    with pytest.raises(PodiumInputError, match=r"models\.m\.precision: unknown .*'half'.*bf16"):
        amp_dtype_for("half", CPU, "models.m.precision")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU runtime")
def test_cpu_runtime_has_no_workers_pinning_or_channels_last():
    runtime = Runtime.detect(4, "auto", channels_last=True)
    assert runtime.device == CPU and runtime.precision == "fp32"
    assert runtime.loader_args == {"num_workers": 0, "pin_memory": False}
    assert not runtime.channels_last
    batch = runtime.batch(torch.full((2, 4, 5, 3), 255, dtype=torch.uint8))
    assert batch.shape == (2, 3, 4, 5) and batch.dtype == torch.float32 and batch.is_contiguous()
    assert float(batch.max()) == 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_runtime_pins_memory_and_feeds_channels_last():
    runtime = Runtime.detect(4)
    assert runtime.cuda and runtime.precision in ("bf16", "fp16") and runtime.channels_last
    assert runtime.loader_args == {"num_workers": 3, "pin_memory": True}
    model = runtime.model(torch.nn.Conv2d(3, 8, 3))
    assert model.weight.is_contiguous(memory_format=torch.channels_last)
    batch = runtime.batch(torch.zeros((2, 8, 8, 3), dtype=torch.uint8))
    assert batch.is_cuda and batch.is_contiguous(memory_format=torch.channels_last)
    with runtime.autocast():
        assert model(batch).dtype == runtime.amp_dtype


def test_loss_log_averages_by_batch_size():
    log = LossLog(epoch=0, check_every=3)
    for loss, size in [(1.0, 4), (2.0, 4), (4.0, 2), (0.5, 2)]:
        log.add(torch.tensor(loss), size)
    assert math.isclose(log.mean(), (4 + 8 + 8 + 1) / 12)


@pytest.mark.parametrize("check_every", [1, 4, 32])
def test_loss_log_names_the_first_bad_batch_however_often_it_checks(check_every):
    log = LossLog(epoch=2, check_every=check_every)
    with pytest.raises(NonFiniteLoss, match=r"nan at epoch 3, batch 6$"):
        for step in range(10):
            log.add(torch.tensor(float("nan") if step in (5, 7) else 1.0), 8)
        log.mean()
