"""pin_gpu: concurrent jobs each get their own GPU through real flock locks in real processes."""

from __future__ import annotations

import logging
import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from podium.train import devices
from podium.train.devices import GpuPinTimeout, pin_gpu, visible_gpu_count

REPO = Path(__file__).resolve().parents[1]

# A training job in miniature: pin, report what it got, hold the card, release, report again.
JOB = """
import logging, os, sys, time
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
from podium.train.devices import pin_gpu
lock_dir, hold_s, timeout_s = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
with pin_gpu(lock_dir, timeout_s=timeout_s, poll_s=0.05) as dev:
    print("GOT", dev, os.environ.get("CUDA_VISIBLE_DEVICES"), time.monotonic(), flush=True)
    time.sleep(hold_s)
print("RELEASED", os.environ.get("CUDA_VISIBLE_DEVICES"), time.monotonic(), flush=True)
"""


def job_env(gpu_count: int = 2) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env[devices.GPU_COUNT_ENV] = str(gpu_count)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"),
                                                      env.get("PYTHONPATH")]))
    return env


def start_job(lock_dir: Path, hold_s: float, timeout_s: float = 10.0,
              gpu_count: int = 2) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", JOB, str(lock_dir), str(hold_s), str(timeout_s)],
        env=job_env(gpu_count), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def read_line(proc: subprocess.Popen, timeout_s: float = 10.0) -> list[str]:
    """The job's next stdout line, split; fails instead of hanging if none comes."""
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout_s):
            proc.kill()
            pytest.fail(f"job printed nothing in {timeout_s} s; stderr:\n{proc.stderr.read()}")
    line = proc.stdout.readline()
    assert line, f"job exited early (rc {proc.wait()}); stderr:\n{proc.stderr.read()}"
    return line.split()


@pytest.fixture
def cuda_untouched() -> None:
    """In-process pinning needs a process where CUDA has not started. On a GPU machine an
    earlier test may have started it, and pin_gpu then rightly refuses (tested below)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        pytest.skip("an earlier test in this process initialised CUDA; the subprocess tests "
                    "cover pinning")


def finish(proc: subprocess.Popen) -> tuple[str, str]:
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    return out, err


def test_concurrent_jobs_get_different_gpus_and_a_third_waits(tmp_path: Path) -> None:
    locks = tmp_path / "locks"
    first = start_job(locks, hold_s=2.0)
    second = start_job(locks, hold_s=4.0)
    got_first, got_second = read_line(first), read_line(second)
    # GOT <yielded> <CUDA_VISIBLE_DEVICES> <time>: each job sees its own card in its env.
    assert {got_first[1], got_second[1]} == {"0", "1"}
    assert got_first[1] == got_first[2] and got_second[1] == got_second[2]

    # Both cards held: a third job queues until the first one exits.
    third = start_job(locks, hold_s=0.1)
    released_first = read_line(first)
    got_third = read_line(third)
    assert got_third[1] == got_first[1], "the third job gets the card the first one freed"
    assert float(got_third[3]) >= float(released_first[2]), "it waited for the release"
    assert released_first[1] == "None", "the variable is restored on exit"
    for proc in (first, second, third):
        finish(proc)


def test_sigkilled_holder_does_not_keep_its_gpu(tmp_path: Path) -> None:
    locks = tmp_path / "locks"
    victim = start_job(locks, hold_s=60.0)
    assert read_line(victim)[1] == "0"
    assert f"pid {victim.pid}" in (locks / "gpu0.lock").read_text()
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=10)
    victim.stdout.close()
    victim.stderr.close()

    successor = start_job(locks, hold_s=0.0, timeout_s=0.0)
    assert read_line(successor)[1] == "0", "the dead job's lock died with it"
    finish(successor)


def test_scheduler_devices_are_kept_and_no_lock_taken(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    monkeypatch.setenv(devices.GPU_COUNT_ENV, "2")
    with caplog.at_level(logging.INFO, logger=devices.__name__), \
            pin_gpu(tmp_path / "locks") as dev:
        assert dev == "3"
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    assert not (tmp_path / "locks").exists()
    assert "keeping it" in caplog.text


def test_no_gpu_runs_on_cpu_and_sets_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv(devices.GPU_COUNT_ENV, "0")
    assert visible_gpu_count() == 0
    with pin_gpu(tmp_path / "locks") as dev:
        assert dev is None
        assert "CUDA_VISIBLE_DEVICES" not in os.environ
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    assert not (tmp_path / "locks").exists()


def test_in_process_pin_writes_holder_and_cleans_up(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cuda_untouched: None) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    lock = tmp_path / "gpu0.lock"
    with pin_gpu(tmp_path, count=2, timeout_s=0) as dev:
        assert dev == "0" and os.environ["CUDA_VISIBLE_DEVICES"] == "0"
        note = lock.read_text()
        assert f"pid {os.getpid()}" in note and "started " in note
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    assert lock.read_text() == ""
    with pin_gpu(tmp_path, count=2, timeout_s=0) as dev:  # released, so free again
        assert dev == "0"


def test_timeout_error_names_lock_dir_and_count(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cuda_untouched: None) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    holders = [start_job(tmp_path, hold_s=60.0) for _ in range(2)]
    try:
        assert sorted(read_line(h)[1] for h in holders) == ["0", "1"]
        impatient = start_job(tmp_path, hold_s=0.0, timeout_s=0.3)
        out, err = impatient.communicate(timeout=20)
        assert impatient.returncode != 0 and "GOT" not in out
        assert "GpuPinTimeout" in err and str(tmp_path) in err and "all 2 GPU locks" in err
        assert "all 2 GPUs busy" in err, "the wait is logged before the failure"

        start = time.monotonic()
        with pytest.raises(GpuPinTimeout, match="all 2 GPU locks") as caught, \
                pin_gpu(tmp_path, count=2, timeout_s=0.2, poll_s=0.05):
            pass
        assert time.monotonic() - start < 2
        message = str(caught.value)
        assert str(tmp_path) in message
        assert all(f"pid {h.pid}" in message for h in holders), "holders are named"
        assert "CUDA_VISIBLE_DEVICES" not in os.environ
    finally:
        for holder in holders:
            holder.kill()
            holder.communicate()


def test_gpu_count_override_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(devices.GPU_COUNT_ENV, "2")
    assert visible_gpu_count() == 2
    for bad in ("two", "-1"):
        monkeypatch.setenv(devices.GPU_COUNT_ENV, bad)
        with pytest.raises(ValueError, match=devices.GPU_COUNT_ENV):
            visible_gpu_count()


def test_gpu_count_never_calls_the_cuda_runtime_in_process(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """cudaGetDeviceCount would fix the visible devices before pin_gpu could set them."""
    torch = pytest.importorskip("torch")
    monkeypatch.delenv(devices.GPU_COUNT_ENV, raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    calls = []
    initialised_before = torch.cuda.is_initialized()
    real = getattr(torch._C, "_cuda_getDeviceCount", None)
    if real is None:
        pytest.skip("torch built without CUDA")
    monkeypatch.setattr(torch._C, "_cuda_getDeviceCount", lambda: calls.append(1) or real())
    assert visible_gpu_count() >= 0
    assert calls == []
    assert torch.cuda.is_initialized() == initialised_before


def test_pinning_after_cuda_started_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Setting CUDA_VISIBLE_DEVICES after CUDA started would claim card k and compute on 0."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    torch.cuda.init()
    with pytest.raises(RuntimeError, match="after torch initialised CUDA"), \
            pin_gpu(tmp_path, count=2, timeout_s=0):
        pass
