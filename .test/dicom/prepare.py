"""Write .test/dicom/competition: 30 CT slices (24 train, 6 test) as DICOM files, pydicom's
CT_small.dcm header around distinct synthetic 128 x 128 textures (raw values = HU + 1024),
labelled soft or dense. Then:

    python .test/dicom/prepare.py && snakemake --cores all --configfile .test/dicom/config.yaml
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
from pydicom.data import get_testdata_file

from podium.synthetic import base_image


def write(here: Path) -> Path:
    """The competition folder under ``here`` (this config's folder), written afresh."""
    root = here / "competition"
    shutil.rmtree(root, ignore_errors=True)
    source = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    rows = []
    for k in range(30):
        split = "test" if k >= 24 else "train"
        texture = base_image(np.random.default_rng([7, k]), 128)[:, :, 0].astype(np.int16)
        image = texture * 8 + (200 if k % 2 else 0)
        ds = source.copy()
        ds.PixelData = image.astype(np.int16).tobytes()
        (root / split).mkdir(parents=True, exist_ok=True)
        ds.save_as(root / split / f"ct{k:02d}.dcm")
        rows.append({"id": f"ct{k:02d}", "split": split, "label": "dense" if k % 2 else "soft"})
    frame = pd.DataFrame(rows)
    frame[frame.split == "train"][["id", "label"]].to_csv(root / "train.csv", index=False)
    test = frame[frame.split == "test"]
    pd.DataFrame({"id": test["id"], "label": "soft"}).to_csv(root / "sample_submission.csv",
                                                             index=False)
    return root


if __name__ == "__main__":
    print(write(Path(__file__).resolve().parent))
