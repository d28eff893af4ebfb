"""A real snakemake run of .test/dicom, a DICOM competition: ingest, dedup, windowed
preprocessing, train."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow


def test_dicom_competition_runs_end_to_end(tmp_path):
    from conftest import Workflow, dot_test_config

    workflow = Workflow(tmp_path, dot_test_config("dicom"))
    workflow.prepare()
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
