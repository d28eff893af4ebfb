"""benchmarks/segment_gpu.py in its --smoke mode: the script runs on the CPU and writes every
part with the fields its GPU run reports (the numbers themselves are never checked)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_segment_gpu_smoke_writes_every_part(tmp_path):
    out = tmp_path / "segment_gpu.json"
    # the checkout's own podium first, whichever copy is installed
    env = os.environ | {"PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO / "src"), os.environ.get("PYTHONPATH")) if p)}
    # one thread, as each job of the suite gets one core
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "segment_gpu.py"),
                           "--smoke", "--threads", "1", "--out", str(out)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(out.read_text())
    assert json.loads(proc.stdout) == report
    assert report["benchmark"] == "segment_gpu" and report["smoke"]
    assert report["skipped"] == []
    assert {"torch", "python", "cpu_count", "cuda"} <= set(report["machine"])

    steps = report["training_steps"]
    assert {(r["arch"], r["mode"]) for r in steps} == {
        (arch, mode) for arch in ("unet", "fpn") for mode in ("fp32", "bf16_channels_last")}
    for row in steps:
        assert "error" not in row, row
        assert row["images_per_s"] > 0 and row["median_step_ms"] > 0 and row["loss_finite"]
    for key, speedups in report["speedup_vs_fp32"].items():
        assert speedups["fp32"] == 1.0 and speedups["bf16_channels_last"] > 0, key

    folds = report["folds"]
    for name in ("podium_default", "fp32_nchw"):
        fold = folds[name]
        assert "error" not in fold, fold
        assert fold["fit_seconds"] > 0 and fold["train_images_per_second"] > 0
        assert fold["device"] == "cpu" and fold["precision"] == "fp32"
        assert 0.0 <= fold["oof_dice"] <= 1.0 and 0.0 <= fold["best_valid_dice"] <= 1.0
        assert fold["n_train"] + fold["n_valid"] == folds["images"]
    assert folds["fp32_nchw"]["channels_last"] is False

    tiles = report["tiled_inference"]
    assert "error" not in tiles, tiles
    assert tiles["weights"] == "default fold's model.pt"
    for name in ("whole_image", "tiled", "tiled_tiles_channels_last"):
        assert tiles[name]["images_per_s"] > 0
    assert 0.0 <= tiles["max_abs_prob_diff_tiled_vs_whole"] <= 1.0
    assert 0.0 <= tiles["dice_tiled"] <= 1.0 and 0.0 <= tiles["dice_whole_image"] <= 1.0
    # blending one pixel's identical values gives them back: the tiling itself is right
    assert tiles["pointwise_model_max_abs_prob_diff"] < 1e-5
