"""A whole run of .test/resume stopped in the middle (SIGTERM to snakemake, or SIGKILL to
snakemake and its jobs): the next plain `snakemake` call finishes it without manual clean-up,
keeps the folds that had finished and resumes the one that had not."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
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
    finished = _interrupt_mid_training(workflow, how)
    if how == "sigkill":
        assert len(finished) == 1  # killed mid-way through the other fold
        assert list((workflow.root / ".snakemake/locks").glob("*"))  # the killed run's locks

    proc = workflow.snakemake()  # no --unlock, no clean-up

    if how == "sigkill":
        assert "removed" in proc.output and "locks left by a killed run" in proc.output
    models = workflow.results / "models/resnet10t"
    for fold, mtime in finished.items():  # finished folds were kept, not redone
        assert (models / f"fold{fold}/metrics.json").stat().st_mtime_ns == mtime
    for fold in {0, 1} - set(finished):  # an interrupted fold resumed from its saved epoch
        metrics = json.loads((models / f"fold{fold}/metrics.json").read_text())
        assert metrics["resumed_from_epoch"] >= 1
    assert (workflow.results / "submission.csv").exists()
