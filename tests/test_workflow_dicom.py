"""A real snakemake run on a DICOM competition: ingest, dedup, windowed preprocessing, train."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.data import get_testdata_file

from podium.synthetic import base_image

pytestmark = pytest.mark.slow


def _write_dicom_competition(root):
    """CT_small.dcm's header around distinct synthetic slices (raw values = HU + 1024)."""
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


def test_dicom_competition_runs_end_to_end(workflow, tmp_path):
    competition = tmp_path / "dicom"
    _write_dicom_competition(competition)
    workflow.config["competition"].update(
        embedded=None, dir=str(competition), train_images="train/{id}.dcm",
        test_images="test/{id}.dcm", task="binary", metric="auc",
    )
    workflow.config["dedup"]["near"] = True
    workflow.config["preprocess"].update(
        size=32, channels=3, dicom_windows=[[40, 400], [-600, 1500], [300, 1500]],
        clahe_mode="per_channel", dtype="uint16",
    )
    workflow.write_config()
    workflow.snakemake()
    results = workflow.results
    manifest = pd.read_parquet(results / "data/manifest.parquet")
    assert (manifest["height"] == 128).all() and (manifest["channels"] == 1).all()
    packed = np.load(results / "preprocess/train.npy", mmap_mode="r")
    assert packed.shape == (24, 32, 32, 3) and packed.dtype == np.uint16
    clusters = pd.read_csv(results / "dedup/clusters.csv")
    assert clusters["cluster"].nunique() == 30
    submission = pd.read_csv(results / "submission.csv", dtype={"id": str})
    assert list(submission["id"]) == [f"ct{k:02d}" for k in range(24, 30)]
    assert submission["label"].between(0, 1).all()  # auc: p of 'soft'
    board = pd.read_csv(results / "leaderboard.csv")
    assert set(board["metric"]) == {"auc"}
