"""A real snakemake run of .test/resume whose training jobs are killed with SIGKILL mid-way: the
next `snakemake` call resumes each fold from its last saved epoch instead of starting over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import local_env

pytestmark = pytest.mark.slow



def _training_job_pids(root: Path) -> list[int]:
    """Processes running this workflow copy's GPU-stage script (Snakemake runs it by path):
    the training jobs, and a test prediction job if one runs at that moment."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(root) in cmdline and "gpu_stage.py" in cmdline:
            pids.append(int(entry.name))
    return pids


def test_sigkilled_training_resumes_from_its_last_epoch(tmp_path):
    from conftest import Workflow, dot_test_config

    workflow = Workflow(tmp_path, dot_test_config("resume"))
    model = workflow.config["models"]["resnet10t"]
    epochs = model["epochs"]
    assert list(workflow.config["models"]) == ["resnet10t"] and model["patience"] == epochs
    state = workflow.results / "resume/resnet10t/fold0/state.pt"
    run = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "2",
                            "--configfile", workflow.configfile],
                           cwd=workflow.root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, env=local_env())
    deadline = time.monotonic() + 300
    while not state.exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    killed = _training_job_pids(workflow.root)
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    output, _ = run.communicate(timeout=300)
    assert killed and state.exists(), output[-3000:]
    assert run.returncode != 0  # the killed jobs failed; Snakemake removed their outputs
    fold_dir = workflow.results / "models/resnet10t/fold0"
    assert not (fold_dir / "oof.parquet").exists()
    saved = torch.load(state, weights_only=False)["epochs_done"]
    assert 1 <= saved < epochs

    workflow.snakemake()  # the next plain call finishes the job

    log = (workflow.results / "logs/train_model/resnet10t_fold0.log").read_text()
    assert f"resuming resnet10t fold 0 from epoch {saved} of {epochs}" in log
    history = pd.read_csv(fold_dir / "history.csv")
    assert list(history["epoch"]) == list(range(1, epochs + 1))
    metrics = json.loads((fold_dir / "metrics.json").read_text())
    assert metrics["resumed_from_epoch"] == saved
    assert not state.exists()
    assert (workflow.results / "submission.csv").exists()
