"""The thin layer between Snakemake's ``script:`` jobs and podium's functions.

A job logs to its ``log:`` file (log records, progress bars and tracebacks alike), and a
:class:`~podium.errors.PodiumInputError` ends the job with its message alone, since the message
already says what is wrong and what to do.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from podium.errors import PodiumInputError


@contextlib.contextmanager
def job_logging(smk: Any) -> Iterator[logging.Logger]:
    """Send logging and stderr to the job's log file; keep errors visible on the console."""
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
