"""Per-epoch training state kept outside the declared outputs, so a killed fold resumes.

Snakemake deletes the outputs of a job that did not finish, so the state lives in its own
folder that no rule declares. It is keyed by everything that defines the job (settings, task,
fold, and fingerprints of its inputs): a state written for other settings or other data is
never resumed from. Writes are atomic (temp file, then rename), so a kill during a save
leaves the previous epoch's state intact. SIGTERM (what SLURM and Ctrl-C in a terminal send
before killing) stops training at once with the last completed epoch saved.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

SMALL_FILE_BYTES = 1 << 24  # hash content up to 16 MiB; bigger files by size and mtime


class TrainingInterrupted(Exception):
    """SIGTERM arrived: the fold stops, its last completed epoch stays saved."""


def file_fingerprint(path: str | Path) -> str:
    """Content hash of a small file (folds.csv, manifest), size and mtime of a big one (the
    packed arrays, rewritten only when preprocessing reruns)."""
    stat = Path(path).stat()
    if stat.st_size <= SMALL_FILE_BYTES:
        return hashlib.sha1(Path(path).read_bytes()).hexdigest()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def resume_key(job: dict[str, Any], inputs: list[str | Path]) -> str:
    """A digest of the job's parameters and the fingerprints of its input files."""
    payload = json.dumps({"job": job, "inputs": [file_fingerprint(p) for p in inputs]},
                         sort_keys=True, default=str)
    return hashlib.sha1(payload.encode()).hexdigest()


class ResumeStore:
    """``state.pt`` of one fold's training, valid only for the job with ``key``."""

    def __init__(self, directory: str | Path, key: str) -> None:
        self.directory = Path(directory)
        self.key = key
        self.path = self.directory / "state.pt"

    def load(self) -> dict[str, Any] | None:
        """The saved state for this key, or None (no state, or a stale one, which is removed)."""
        if not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=False)
        except Exception as err:  # a torn or foreign file: start over rather than fail
            log.warning("ignoring unreadable resume state %s (%s)", self.path, err)
            return None
        if state.get("key") != self.key:
            log.info("resume state %s belongs to other settings or inputs; starting over",
                     self.path)
            self.clear()
            return None
        return state

    def save(self, state: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".state.pt.{os.getpid()}.tmp")
        torch.save({**state, "key": self.key}, tmp)
        tmp.replace(self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.directory.rmdir()


@contextlib.contextmanager
def stop_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into :class:`TrainingInterrupted` inside the block (main thread only),
    restoring the previous handler afterwards."""
    def handler(signum: int, frame: object) -> None:
        raise TrainingInterrupted(f"received signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
