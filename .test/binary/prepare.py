"""Write .test/binary/competition: 120 embedded digits relabelled even/odd, with the held-out
solution.csv. Then run the config:

    python .test/binary/prepare.py && snakemake --cores all --configfile .test/binary/config.yaml
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from podium.data.digits import write_digits_competition


def write(here: Path) -> Path:
    """The competition folder under ``here`` (this config's folder), written afresh."""
    competition = here / "competition"
    shutil.rmtree(competition, ignore_errors=True)
    write_digits_competition(competition, max_images=120)
    for table in ("train.csv", "sample_submission.csv", "solution.csv"):
        frame = pd.read_csv(competition / table, dtype=str)
        frame["label"] = np.where(frame["label"].astype(int) % 2 == 0, "even", "odd")
        frame.to_csv(competition / table, index=False)
    return competition


if __name__ == "__main__":
    print(write(Path(__file__).resolve().parent))
