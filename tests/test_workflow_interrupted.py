"""A whole run of .test/resume stopped twice in the middle of training, as runs are stopped:
SIGKILL to snakemake and its jobs (a lost session, the OOM killer), then, in the next call,
SIGTERM to snakemake alone (Ctrl-C, SLURM's time limit). The call after each finishes what was
left without manual clean-up: it removes the killed run's locks, keeps the folds that had
finished and resumes the one that had not from its last saved epoch, ending with the history
an uninterrupted fold has."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pandas as pd
import pytest
import torch
from conftest import local_env

pytestmark = pytest.mark.slow


def _stop_when(workflow, ready: Callable[[], bool], how: str) -> str:
    """Run snakemake on one core until ``ready()``, then stop it: SIGKILL to snakemake and
    every job it started, or SIGTERM to snakemake alone (which stops its jobs itself, letting
    a running one finish); returns what the call printed."""
    run = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "1",
                            "--configfile", workflow.configfile],
                           cwd=workflow.root, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, start_new_session=True,
                           env=local_env())
    deadline = time.monotonic() + 300
    reached = False
    while run.poll() is None and time.monotonic() < deadline:
        if ready():
            reached = True
            break
        time.sleep(0.05)
    if how == "sigkill":
        os.killpg(run.pid, signal.SIGKILL)
    else:
        os.kill(run.pid, signal.SIGTERM)
    output, _ = run.communicate(timeout=120)
    assert reached, output[-3000:]
    return output


def test_the_next_call_finishes_a_killed_and_then_a_stopped_run(tmp_path):
    from conftest import Workflow, dot_test_config

    workflow = Workflow(tmp_path, dot_test_config("resume"))
    model = workflow.config["models"]["resnet10t"]
    epochs = model["epochs"]
    assert list(workflow.config["models"]) == ["resnet10t"]
    assert model["patience"] == epochs  # no early stop: every fold runs every epoch
    models = workflow.results / "models/resnet10t"

    def state(fold: int):
        return workflow.results / f"resume/resnet10t/fold{fold}/state.pt"

    def saved(fold: int) -> int:
        return torch.load(state(fold), weights_only=False)["epochs_done"]

    def done() -> list[int]:
        return [k for k in (0, 1) if (models / f"fold{k}/metrics.json").exists()]

    # 1. SIGKILL once one fold is done and the other has saved an epoch
    _stop_when(workflow, lambda: len(done()) == 1 and state(1 - done()[0]).exists(), "sigkill")
    (finished,) = done()  # killed mid-way through the other fold
    interrupted = 1 - finished
    kept = (models / f"fold{finished}/metrics.json").stat().st_mtime_ns
    assert list((workflow.root / ".snakemake/locks").glob("*"))  # the killed run's locks
    first = saved(interrupted)
    assert 1 <= first < epochs
    assert not (models / f"fold{interrupted}/oof.parquet").exists()

    # 2. the next call removes the locks and resumes the fold; SIGTERM once it saved another
    # epoch (or finished: SIGTERM lets a running job finish, so it may be done)
    output = _stop_when(workflow, lambda: interrupted in done() or (
        state(interrupted).exists() and saved(interrupted) > first), "sigterm")
    assert "removed" in output and "locks left by a killed run" in output
    # finished in this call (resumed from the first stop), or to resume from where it stopped
    resumes_from = first if interrupted in done() else saved(interrupted)
    assert first <= resumes_from < epochs

    # 3. a plain call, no --unlock and no clean-up, finishes the run
    workflow.snakemake()

    assert (models / f"fold{finished}/metrics.json").stat().st_mtime_ns == kept  # not redone
    log = (workflow.results / f"logs/train_model/resnet10t_fold{interrupted}.log").read_text()
    assert f"resuming resnet10t fold {interrupted} from epoch {resumes_from} of {epochs}" in log
    metrics = json.loads((models / f"fold{interrupted}/metrics.json").read_text())
    assert metrics["resumed_from_epoch"] == resumes_from
    history = pd.read_csv(models / f"fold{interrupted}/history.csv")
    assert list(history["epoch"]) == list(range(1, epochs + 1))
    assert not state(interrupted).exists()
    assert (workflow.results / "submission.csv").exists()
