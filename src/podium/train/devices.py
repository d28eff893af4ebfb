"""One GPU per concurrent training job on a multi-GPU workstation.

``snakemake --resources gpu=N`` runs up to N training jobs at once but never tells a job which
card to use, so without help every job lands on GPU 0. :func:`pin_gpu` gives each job its own
card by setting ``CUDA_VISIBLE_DEVICES`` in the job's own process before CUDA initialises (torch
initialises CUDA lazily, so after ``import torch`` but before the first ``torch.cuda`` call is
early enough). A scheduler that already chose devices (SLURM with ``--gpus`` sets the variable)
is left alone.

Devices are claimed with ``fcntl.flock`` on ``<lock_dir>/gpu<k>.lock``. The kernel drops a
flock lock when the last file descriptor on it closes, which includes the process dying from
SIGKILL or the OOM killer, so a crashed job never leaves a card claimed. Lock *files* whose
existence means "taken" would need deleting, and a killed job cannot delete anything. The files
stay on disk; their text (pid, host, start time) is only for humans.

The lock dir must be local to the host: GPU indexes mean nothing on another machine, so a dir on
a filesystem shared between hosts would make jobs on different hosts wait for each other.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

log = logging.getLogger(__name__)

GPU_COUNT_ENV = "PODIUM_GPU_COUNT"
"""Overrides :func:`visible_gpu_count` (tests pretend a machine has 2 GPUs)."""

DEFAULT_TIMEOUT_S = 12 * 3600.0
"""Long enough to queue behind a whole fold when more jobs than cards run (``--resources gpu=N``
above the card count), short enough that a wedged holder does not hang a pipeline for ever."""


class GpuPinTimeout(TimeoutError):
    """Every card stayed locked for the whole timeout."""


def default_lock_dir() -> Path:
    """One lock folder per user and machine, shared by every podium run there: GPU numbers
    mean something only on one host, and two runs in different results folders must not
    claim the same card."""
    return Path(tempfile.gettempdir()) / f"podium-gpu-locks-{os.getuid()}"


def visible_gpu_count() -> int:
    """How many NVIDIA GPUs this machine has, found without initialising CUDA in this process.

    ``PODIUM_GPU_COUNT`` overrides the answer. Otherwise NVML is asked directly, as
    ``torch.cuda.device_count()`` does first. That function is not used here because when NVML
    fails it falls back to ``cudaGetDeviceCount``, which runs ``cuInit``: the driver then reads
    ``CUDA_VISIBLE_DEVICES`` once and for all and c10 caches the count, so setting the variable
    afterwards would pin nothing. When NVML is missing but the CUDA driver is present (a
    container without the ``utility`` capability), the count comes from torch in a child
    process, whose CUDA initialisation cannot affect this one. No NVML and no driver: 0.

    ``CUDA_VISIBLE_DEVICES`` is ignored: this counts the cards :func:`pin_gpu` may choose from,
    and it only asks when the variable is unset.
    """
    override = os.environ.get(GPU_COUNT_ENV, "").strip()
    if override:
        try:
            count = int(override)
        except ValueError:
            count = -1
        if count < 0:
            raise ValueError(f"{GPU_COUNT_ENV}={override!r}: expected a whole number >= 0")
        return count
    count = _nvml_device_count()
    if count is not None:
        return count
    try:
        ctypes.CDLL("libcuda.so.1")  # loading the driver library does not initialise it
    except OSError:
        return 0
    return _child_torch_device_count()


def _nvml_device_count() -> int | None:
    """The device count NVML reports, or None when NVML is missing or fails."""
    try:
        nvml = ctypes.CDLL("libnvidia-ml.so.1")
        if nvml.nvmlInit_v2() != 0:
            return None
        try:
            count = ctypes.c_uint(0)
            if nvml.nvmlDeviceGetCount_v2(ctypes.byref(count)) != 0:
                return None
            return int(count.value)
        finally:
            nvml.nvmlShutdown()
    except (OSError, AttributeError):
        return None


def _child_torch_device_count() -> int:
    """``torch.cuda.device_count()`` in a throwaway process, so CUDA initialises there only."""
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    code = "import torch; print(torch.cuda.device_count())"
    try:
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                              text=True, timeout=300, check=True)
        return int(done.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as err:
        log.warning("NVML unavailable and counting GPUs with torch in a child process failed "
                    "(%s); assuming no GPU", err)
        return 0


@contextmanager
def pin_gpu(lock_dir: str | Path, count: int | None = None,
            timeout_s: float = DEFAULT_TIMEOUT_S, poll_s: float = 0.5) -> Iterator[str | None]:
    """Run the body on one GPU of its own; yield the ``CUDA_VISIBLE_DEVICES`` it runs with.

    Wrap a job's whole GPU work in it and enter it before anything touches CUDA (including
    ``torch.cuda.is_available()``, which initialises the driver). Yields:

    - the preset value, untouched and with no lock taken, when ``CUDA_VISIBLE_DEVICES`` is
      already in the environment (a scheduler chose; an empty value means "no GPU");
    - None, setting nothing, when there is no GPU (``count``, or :func:`visible_gpu_count`,
      is 0): the job runs on the CPU;
    - otherwise ``str(k)`` for the first card k in ``0..count-1`` whose lock is free, waiting
      (polling every ``poll_s``) up to ``timeout_s`` for one to free up, then raising
      :class:`GpuPinTimeout`. The variable is restored and the lock released on exit.

    The lock is tied to the open file, which forked children (DataLoader workers) share: it is
    released on exit, or when the job and every such child have died.
    """
    preset = os.environ.get("CUDA_VISIBLE_DEVICES")
    if preset is not None:
        log.info("CUDA_VISIBLE_DEVICES=%r was set before podium (scheduler?); keeping it, "
                 "no GPU lock taken", preset)
        yield preset
        return
    n_gpus = visible_gpu_count() if count is None else count
    if n_gpus <= 0:
        log.info("no GPU found; running on the CPU")
        yield None
        return
    _refuse_if_cuda_initialised()
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    fd, gpu = _claim(lock_dir, n_gpus, timeout_s, poll_s)
    devices = str(gpu)
    os.environ["CUDA_VISIBLE_DEVICES"] = devices
    log.info("pinned to GPU %d of %d (CUDA_VISIBLE_DEVICES=%s, lock %s)", gpu, n_gpus, devices,
             lock_dir / f"gpu{gpu}.lock")
    try:
        yield devices
    finally:
        if os.environ.get("CUDA_VISIBLE_DEVICES") == devices:
            del os.environ["CUDA_VISIBLE_DEVICES"]
        try:
            os.ftruncate(fd, 0)  # an empty file reads as free to a human
        finally:
            os.close(fd)  # closing drops the flock
        log.info("released GPU %d", gpu)


def _refuse_if_cuda_initialised() -> None:
    """Pinning after torch initialised CUDA would claim card k while computing on card 0."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        raise RuntimeError("pin_gpu entered after torch initialised CUDA: setting "
                           "CUDA_VISIBLE_DEVICES now has no effect. Enter it before any "
                           "torch.cuda call.")


def _claim(lock_dir: Path, n_gpus: int, timeout_s: float, poll_s: float) -> tuple[int, int]:
    """Lock the first free ``gpu<k>.lock``; poll until one frees up or the timeout passes."""
    deadline = time.monotonic() + timeout_s
    waiting = False
    while True:
        for gpu in range(n_gpus):
            fd = _try_lock(lock_dir / f"gpu{gpu}.lock")
            if fd is not None:
                if waiting:
                    log.info("GPU %d freed up", gpu)
                _write_holder(fd, gpu)
                return fd, gpu
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise GpuPinTimeout(
                f"no free GPU after {timeout_s:g} s: all {n_gpus} GPU locks in {lock_dir} are "
                f"held ({_holders(lock_dir, n_gpus)}). Run fewer GPU jobs at once "
                f"(snakemake --resources gpu=N with N <= {n_gpus}) or stop the holders.")
        if not waiting:
            log.info("all %d GPUs busy (%s); waiting up to %g s for one", n_gpus,
                     _holders(lock_dir, n_gpus), timeout_s)
            waiting = True
        time.sleep(min(poll_s, remaining))


def _try_lock(path: Path) -> int | None:
    """An fd holding an exclusive flock on ``path``, or None if another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # no O_TRUNC: keep the holder's note
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        os.close(fd)
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    return fd


def _write_holder(fd: int, gpu: int) -> None:
    """Who holds the card, for ``cat gpu<k>.lock``; never read back to decide anything."""
    started = datetime.now().astimezone().isoformat(timespec="seconds")
    note = f"gpu {gpu}\npid {os.getpid()}\nhost {socket.gethostname()}\nstarted {started}\n"
    os.ftruncate(fd, 0)
    os.pwrite(fd, note.encode(), 0)


def _holders(lock_dir: Path, n_gpus: int) -> str:
    """One-line summary of the lock files' notes, for log lines and errors."""
    parts = []
    for gpu in range(n_gpus):
        try:
            fields = dict(line.split(" ", 1) for line in
                          (lock_dir / f"gpu{gpu}.lock").read_text().splitlines() if " " in line)
        except OSError:
            fields = {}
        pid, started = fields.get("pid", "?"), fields.get("started", "?")
        parts.append(f"gpu{gpu}: pid {pid} since {started}")
    return "; ".join(parts)
