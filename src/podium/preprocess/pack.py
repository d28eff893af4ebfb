"""Pack a split's preprocessed images into one memory-mappable ``.npy`` array plus an index.

Training then reads contiguous uint8 (or uint16) rows instead of decoding files every epoch.
Workers are threads: OpenCV releases the GIL, so threads scale without pickling images between
processes.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from numpy.lib.format import open_memmap
from tqdm import tqdm

from podium.preprocess.transforms import PreprocessSettings, preprocess_image
from podium.tables import write_parquet

log = logging.getLogger(__name__)


def _fill(packed: np.ndarray, paths: list[str], settings: PreprocessSettings, threads: int,
          label: str) -> None:
    """Preprocess every path into its row, one OpenCV thread per worker thread."""
    cv2.setNumThreads(1)

    def work(i: int) -> None:
        packed[i] = preprocess_image(paths[i], settings)

    with ThreadPoolExecutor(max(1, threads)) as pool:
        for _ in tqdm(pool.map(work, range(len(paths))), total=len(paths),
                      desc=f"preprocess {label}", mininterval=5):
            pass


def pack_split(
    manifest: pd.DataFrame,
    split: str,
    settings: PreprocessSettings,
    array_path: str | Path,
    index_path: str | Path,
    threads: int = 1,
) -> None:
    """Preprocess the ``split`` rows of the manifest into ``array_path`` (N, S, S, C) of
    ``settings.dtype``: uint16 keeps the precision of 16-bit PNG, TIFF and DICOM sources."""
    rows = manifest[manifest["split"] == split].reset_index(drop=True)
    array_path = Path(array_path)
    array_path.parent.mkdir(parents=True, exist_ok=True)
    shape = (len(rows), settings.size, settings.size, settings.channels)
    tmp = array_path.with_name(f".{array_path.name}.tmp")
    packed = open_memmap(tmp, mode="w+", dtype=settings.dtype, shape=shape)
    _fill(packed, rows["path"].tolist(), settings, threads, split)
    packed.flush()
    del packed
    tmp.replace(array_path)
    write_parquet(pd.DataFrame({"id": rows["id"], "row": np.arange(len(rows))}), index_path)
    log.info("packed %d %s images into %s %s", len(rows), split, array_path, shape)

