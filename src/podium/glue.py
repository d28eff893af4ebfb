"""The thin layer between Snakemake's ``script:`` jobs and podium's functions.

A stage's job runs the task plug-in's entry point its rule names (:func:`run_entry`), given
the job as a :class:`StageJob`. A job logs to its ``log:`` file (log records, progress bars
and tracebacks alike), and a :class:`~podium.errors.PodiumInputError` ends the job with its
message alone, since the message already says what is wrong and what to do. A job is a
short-lived process: it imports its entry point with the garbage collector paused and freezes
its objects when its work is done (:func:`load_entry`, :func:`job_logging`), so that neither
the imports nor the interpreter's teardown collect over what torch and timm made.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import logging
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podium.errors import PodiumInputError


@contextlib.contextmanager
def job_logging(smk: Any) -> Iterator[logging.Logger]:
    """Send logging and stderr to the job's log file; keep errors visible on the console.
    Meant for a job's process: on leaving, it freezes the process's objects for its exit."""
    log_path = Path(smk.log[0]) if len(smk.log) else None
    stream = open(log_path, "w", buffering=1) if log_path else sys.stderr  # noqa: SIM115
    console = sys.__stderr__
    root = logging.getLogger()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    try:
        with contextlib.redirect_stderr(stream):
            yield logging.getLogger(f"podium.{smk.rule}")
    except PodiumInputError as err:
        print(f"podium: {err}", file=stream)
        print(f"\npodium: {err}\n", file=console)
        sys.exit(1)
    except Exception:
        traceback.print_exc(file=stream)
        raise
    finally:
        if log_path:
            stream.close()
        # The job's work is done and only the interpreter's teardown is left, whose garbage
        # collections would walk every object torch, timm or pandas made at import (1.3 s
        # after torch and timm); frozen, they are left to the process's exit.
        gc.freeze()


_SKIPPED_PARAMS = ("code", "entry", "settings", "resume_dir")


@dataclass(frozen=True)
class StageJob:
    """One job as an entry point receives it: the rule's named inputs and outputs (paths; a
    list for an input over folds or entries), the config entry it runs (a model's, a blend's,
    a post-processor's), the name of what it makes (model, blend, stacker or
    ``entry+post``), the fold (train and predict jobs), threads, for training the folder that
    keeps each epoch for resuming, and the rule's other params (``options``: the entries it
    combines, the config keys the stage asked for)."""

    inputs: Mapping[str, Any]
    outputs: Mapping[str, str]
    settings: Mapping[str, Any]
    name: str
    fold: int | None = None
    threads: int = 1
    resume_dir: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, smk: Any) -> StageJob:
        """The job of a running Snakemake script (its ``snakemake`` object)."""
        params, wildcards = smk.params, dict(smk.wildcards.items())
        fold = wildcards.get("fold")
        if "post" in wildcards:
            name = f"{wildcards['entry']}+{wildcards['post']}"
        else:
            name = next((wildcards[k] for k in ("model", "blend", "stacker") if k in wildcards),
                        "")
        options = {k: v for k, v in params.items() if k not in _SKIPPED_PARAMS}
        if "entry" in wildcards:
            options["source"] = wildcards["entry"]
        return cls(dict(smk.input.items()), dict(smk.output.items()),
                   getattr(params, "settings", {}), name,
                   None if fold is None else int(fold), smk.threads,
                   getattr(params, "resume_dir", None), options)


def run_entry(entry: str, job: StageJob) -> Any:
    """Import ``module:function`` and call it with ``job``."""
    return load_entry(entry)(job)


def load_entry(entry: str) -> Callable[[StageJob], Any]:
    """The function ``module:function`` names, imported with the garbage collector paused:
    importing torch and timm makes millions of long-lived objects and no garbage, and each
    collection on the way walks all of them (0.7 CPU-s of a model job's start)."""
    module, _, function = entry.partition(":")
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return getattr(importlib.import_module(module), function)
    finally:
        if was_enabled:
            gc.enable()
