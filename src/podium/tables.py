"""Small, atomic readers and writers for the tables and JSON files the DAG passes around.

Writes go to a temporary sibling and are renamed into place, so a killed job never leaves a
half-written artifact that a rerun would mistake for a finished one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def write_parquet(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a table as parquet (pyarrow), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)


def write_csv(frame: pd.DataFrame, path: str | Path) -> None:
    """Write a table as CSV without the index, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    frame.to_csv(tmp, index=False)
    tmp.replace(path)


def write_json(data: Any, path: str | Path) -> None:
    """Write pretty JSON, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)


def write_npy(array: Any, path: str | Path) -> None:
    """Write a numpy array as .npy, atomically."""
    import numpy as np

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    with open(tmp, "wb") as handle:
        np.save(handle, array)
    tmp.replace(path)


def load_packed(array_path: str | Path) -> Any:
    """Memory-map a packed ``.npy`` array (images, masks, instance labels) read-only: workers
    share pages instead of copies, and a job that reads a few rows reads only those."""
    import numpy as np

    return np.load(array_path, mmap_mode="r")


def read_json(path: str | Path) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text())
