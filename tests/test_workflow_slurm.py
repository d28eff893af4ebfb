"""The tiny pipeline through a real SLURM cluster (.ci/slurm/start-cluster.sh: one node, two
fake GPUs) with the shipped SLURM profile: training and test-prediction jobs are submitted
with one GPU each, folds train on distinct CUDA_VISIBLE_DEVICES, cheap rules stay local, and
the results keep every contract of a local run."""

from __future__ import annotations

import json
import shutil
import subprocess

import pandas as pd
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.slurm]


def _cluster_is_up() -> bool:
    if shutil.which("sinfo") is None:
        return False
    state = subprocess.run(["sinfo", "-h", "-n", "localhost", "-o", "%T"],
                           capture_output=True, text=True, timeout=30)
    return state.stdout.strip() in ("idle", "mixed")


def _jobs_by_rule() -> dict[str, list[str]]:
    """SLURM job ids of this run by rule, from the plugin's job comments."""
    out = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i|%k"], capture_output=True,
                         text=True, timeout=30, check=True).stdout
    jobs: dict[str, list[str]] = {}
    for line in out.splitlines():
        job, comment = line.split("|", 1)
        if comment.startswith("rule_"):
            rule = comment[len("rule_"):].split("_wildcards")[0]
            jobs.setdefault(rule, []).append(job)
    return jobs


def test_tiny_pipeline_runs_through_slurm(workflow):
    if not _cluster_is_up():
        pytest.skip("no SLURM cluster on this machine: run .ci/slurm/start-cluster.sh")
    before = {j for ids in _jobs_by_rule().values() for j in ids}
    workflow.config["models"].pop("regnetx_002")  # one model: its two folds run side by side
    workflow.write_config()
    workflow.snakemake(
        "--workflow-profile", "workflow/profiles/slurm",
        "--set-resources", "train_model:mem_mb=1500", "predict_test:mem_mb=1500",
        "preprocess_images:mem_mb=1500",
        "--default-resources", "mem_mb=1000", "runtime=30",
        "--slurm-init-seconds-before-status-checks", "2", timeout=600)

    jobs = {rule: [j for j in ids if j not in before] for rule, ids in _jobs_by_rule().items()}
    assert len(jobs["train_model"]) == 2 and len(jobs["predict_test"]) == 2
    assert len(jobs["preprocess_images"]) == 2
    assert not set(jobs) - {"train_model", "predict_test", "preprocess_images"}  # rest: local
    for job in jobs["train_model"] + jobs["predict_test"]:
        details = subprocess.run(["scontrol", "show", "job", job], capture_output=True,
                                 text=True, timeout=30, check=True).stdout
        assert "gres:gpu:1" in details and "JobState=COMPLETED" in details
    for job in jobs["preprocess_images"]:
        details = subprocess.run(["scontrol", "show", "job", job], capture_output=True,
                                 text=True, timeout=30, check=True).stdout
        assert "gpu" not in details.split("TresPerJob", 1)[-1].split("\n")[0]

    results = workflow.results
    devices = {json.loads(p.read_text())["cuda_visible_devices"]
               for p in results.glob("models/*/fold*/metrics.json")}
    assert devices == {"0", "1"}  # SLURM gave concurrent folds different cards
    board = pd.read_csv(results / "leaderboard.csv")
    assert list(board.columns) == ["name", "kind", "metric", "cv_mean", "cv_std"]
    assert {"resnet10t", "mean", "lightgbm"} <= set(board["name"])
    sample = pd.read_csv(results / "competition/sample_submission.csv", dtype=str)
    submission = pd.read_csv(results / "submission.csv", dtype=str)
    assert list(submission.columns) == list(sample.columns)
    assert list(submission["id"]) == list(sample["id"])
    folds = pd.read_csv(results / "folds.csv", dtype={"id": str})
    oof = pd.read_parquet(results / "models/resnet10t/oof.parquet")
    assert sorted(oof["id"]) == sorted(folds["id"])
