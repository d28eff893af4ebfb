"""Shared by the benchmark scripts: print a result as JSON and keep it under benchmarks/out."""

from __future__ import annotations

import json
from pathlib import Path


def emit(report: dict, path: Path) -> None:
    """Write ``report`` to ``path`` (creating benchmarks/out) and print it."""
    text = json.dumps(report, indent=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    print(text)
