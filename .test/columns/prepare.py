"""Write .test/columns/competition: 60 embedded digits whose target column is named ``source``
and whose group column (six writers) is named ``fold``, like podium's own columns. Then:

    python .test/columns/prepare.py && snakemake --cores all --configfile .test/columns/config.yaml
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from podium.data.digits import write_digits_competition


def write(here: Path) -> Path:
    """The competition folder under ``here`` (this config's folder), written afresh."""
    competition = here / "competition"
    shutil.rmtree(competition, ignore_errors=True)
    write_digits_competition(competition, max_images=60)
    for table in ("train.csv", "sample_submission.csv", "solution.csv"):
        frame = pd.read_csv(competition / table, dtype=str).rename(columns={"label": "source"})
        if table == "train.csv":
            frame["fold"] = [f"writer{k % 6}" for k in range(len(frame))]
        frame.to_csv(competition / table, index=False)
    return competition


if __name__ == "__main__":
    print(write(Path(__file__).resolve().parent))
