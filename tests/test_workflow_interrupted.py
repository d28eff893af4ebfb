"""A whole run of .test/resume stopped in the middle (SIGTERM to snakemake, or SIGKILL to
snakemake and its jobs): the next plain `snakemake` call finishes it without manual clean-up,
keeps the folds that had finished and resumes the one that had not from its last saved epoch,
ending with the history an uninterrupted fold has."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch
from conftest import local_env

pytestmark = pytest.mark.slow


def _interrupt_mid_training(workflow, how: str) -> dict[int, int]:
    """Run on one core until one fold is done and the other has saved an epoch, then stop
    the run; returns the modification times of the folds' metrics that exist by then
    (on SIGTERM Snakemake lets a running job finish, so both folds may be done)."""
    assert list(workflow.config["models"]) == ["resnet10t"]
    run = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "1",
                            "--configfile", workflow.configfile],
                           cwd=workflow.root, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, start_new_session=True,
                           env=local_env())
    models = workflow.results / "models/resnet10t"
    deadline = time.monotonic() + 300
    finished = None
    while run.poll() is None and time.monotonic() < deadline:
        done = [k for k in (0, 1) if (models / f"fold{k}/metrics.json").exists()]
        if done and (workflow.results / f"resume/resnet10t/fold{1 - done[0]}/state.pt").exists():
            finished = done[0]
            break
        time.sleep(0.05)
    if how == "sigkill":
        os.killpg(run.pid, signal.SIGKILL)  # snakemake and every job it started
    else:
        os.kill(run.pid, signal.SIGTERM)  # snakemake alone: it stops its jobs itself
    output, _ = run.communicate(timeout=120)
    assert finished is not None, output[-3000:]
    return {k: (models / f"fold{k}/metrics.json").stat().st_mtime_ns for k in (0, 1)
            if (models / f"fold{k}/metrics.json").exists()}


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_the_next_call_finishes_an_interrupted_run(tmp_path, how):
    from conftest import Workflow, dot_test_config

    workflow = Workflow(tmp_path, dot_test_config("resume"))
    model = workflow.config["models"]["resnet10t"]
    epochs = model["epochs"]
    assert model["patience"] == epochs  # no early stop: every fold runs every epoch
    finished = _interrupt_mid_training(workflow, how)
    if how == "sigkill":
        assert len(finished) == 1  # killed mid-way through the other fold
        assert list((workflow.root / ".snakemake/locks").glob("*"))  # the killed run's locks
    models = workflow.results / "models/resnet10t"
    saved = {}  # interrupted fold -> the epochs its resume state holds
    for fold in {0, 1} - set(finished):
        state = workflow.results / f"resume/resnet10t/fold{fold}/state.pt"
        saved[fold] = torch.load(state, weights_only=False)["epochs_done"]
        assert 1 <= saved[fold] < epochs
        assert not (models / f"fold{fold}/oof.parquet").exists()

    proc = workflow.snakemake()  # no --unlock, no clean-up

    if how == "sigkill":
        assert "removed" in proc.output and "locks left by a killed run" in proc.output
    for fold, mtime in finished.items():  # finished folds were kept, not redone
        assert (models / f"fold{fold}/metrics.json").stat().st_mtime_ns == mtime
    for fold, epoch in saved.items():  # an interrupted fold resumed from its saved epoch
        log = (workflow.results / f"logs/train_model/resnet10t_fold{fold}.log").read_text()
        assert f"resuming resnet10t fold {fold} from epoch {epoch} of {epochs}" in log
        history = pd.read_csv(models / f"fold{fold}/history.csv")
        assert list(history["epoch"]) == list(range(1, epochs + 1))
        metrics = json.loads((models / f"fold{fold}/metrics.json").read_text())
        assert metrics["resumed_from_epoch"] == epoch
        assert not (workflow.results / f"resume/resnet10t/fold{fold}/state.pt").exists()
    assert (workflow.results / "submission.csv").exists()
