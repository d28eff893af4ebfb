"""Write .test/dedup/competition and .test/dedup/external: 60 distinct JPEGs and 20 altered
copies (near duplicates) in 3 classes, one duplicate in test (the leak), one duplicate
relabelled (a label conflict), and an external source of 6 new images plus a copy of a
competition train image. Then:

    python .test/dedup/prepare.py && snakemake --cores all --configfile .test/dedup/config.yaml
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pandas as pd

from podium.synthetic import write_planted_set


def write(here: Path) -> dict:
    """Both folders under ``here`` (this config's folder), written afresh; returns the planted
    ``files`` (id, source, label), the ``leaked`` test image and the ``conflicted`` one."""
    competition, external = here / "competition", here / "external"
    for folder in (competition, external):
        shutil.rmtree(folder, ignore_errors=True)
    with tempfile.TemporaryDirectory() as raw:
        planted = write_planted_set(Path(raw) / "raw", n_base=60, n_duplicates=20, size=64,
                                    seed=11)
        files = planted.files.assign(label=lambda f: f["source"].str[3:].astype(int) % 3)
        duplicated_sources = set(files.loc[files["id"].str.startswith("dup"), "source"])
        test_ids = set(files.loc[~files["source"].isin(duplicated_sources), "id"][:8])
        leaked = files[files["id"].str.startswith("dup")].iloc[0]
        test_ids.add(leaked["id"])
        conflicted = files[files["id"].str.startswith("dup")
                           & ~files["id"].isin(test_ids)].iloc[0]
        files.loc[files["id"] == conflicted["id"], "label"] = (conflicted["label"] + 1) % 3

        for split in ("train", "test"):
            (competition / split).mkdir(parents=True)
        for row in files.itertuples():
            split = "test" if row.id in test_ids else "train"
            shutil.copy(row.path, competition / split / f"{row.id}.jpg")
        train = files[~files["id"].isin(test_ids)]
        train[["id", "label"]].to_csv(competition / "train.csv", index=False)
        pd.DataFrame({"id": sorted(test_ids), "label": 0}).to_csv(
            competition / "sample_submission.csv", index=False)

        (external / "train").mkdir(parents=True)
        extra = write_planted_set(Path(raw) / "extra", n_base=6, n_duplicates=0, size=64,
                                  seed=99).files
        for row in extra.itertuples():
            shutil.copy(row.path, external / "train" / f"{row.id}.jpg")
    copied = train["id"].iloc[0]
    shutil.copy(competition / "train" / f"{copied}.jpg", external / "train" / "copy.jpg")
    pd.DataFrame({"id": [*extra["id"], "copy"],
                  "label": [*(k % 3 for k in range(6)), train["label"].iloc[0]]}).to_csv(
        external / "train.csv", index=False)
    return {"files": files.drop(columns="path"), "leaked": leaked, "conflicted": conflicted}


if __name__ == "__main__":
    write(Path(__file__).resolve().parent)
    print(Path(__file__).resolve().parent)
