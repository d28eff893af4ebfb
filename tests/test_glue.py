"""podium.glue, the job side of a Snakemake script: the entry point is imported with the
garbage collector paused and the job's objects are frozen when its work is done, so that a
job process pays for neither collections over what its imports made nor a collecting
teardown; a failing job still reports as before."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[1] / "src")

ENTRY = """
import gc

IMPORTED_WITH_COLLECTOR = gc.isenabled()
seen = {}


def probe(job):
    seen["collector_on_while_working"] = gc.isenabled()
    seen["frozen_while_working"] = gc.get_freeze_count()
    if job == "fail":
        raise ValueError("the job failed")
    return "done"
"""

JOB = """
import gc, json, sys, types
sys.path[:0] = [{src!r}, {entries!r}]
from podium import glue

gc.disable() if {paused!r} else None
with glue.job_logging(types.SimpleNamespace(log=[], rule="probe")):
    loaded = glue.load_entry("probe_entry:probe")
    probe_entry = sys.modules["probe_entry"]
    seen = probe_entry.seen
    seen["loaded"] = loaded is probe_entry.probe
    seen["imported_with_collector"] = probe_entry.IMPORTED_WITH_COLLECTOR
    seen["collector_on_after_load"] = gc.isenabled()
    try:
        seen["result"] = glue.run_entry("probe_entry:probe", {job!r})
    finally:
        print(json.dumps(seen))
print(json.dumps({{"frozen_after_job": gc.get_freeze_count()}}))
"""


@pytest.fixture
def entries(tmp_path: Path) -> Path:
    (tmp_path / "probe_entry.py").write_text(ENTRY)
    return tmp_path


def _job(entries: Path, job: str, paused: bool = False) -> subprocess.CompletedProcess:
    code = JOB.format(src=SRC, entries=str(entries), job=job, paused=paused)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)


def test_a_job_works_with_the_collector_on_and_is_frozen_when_done(entries):
    proc = _job(entries, "ok")
    assert proc.returncode == 0, proc.stderr
    during, after = (json.loads(line) for line in proc.stdout.splitlines())
    assert during == {"loaded": True, "imported_with_collector": False,
                      "collector_on_after_load": True,
                      "collector_on_while_working": True, "frozen_while_working": 0,
                      "result": "done"}
    assert after["frozen_after_job"] > 0


def test_loading_an_entry_leaves_a_paused_collector_paused(entries):
    proc = _job(entries, "ok", paused=True)
    assert proc.returncode == 0, proc.stderr
    during = json.loads(proc.stdout.splitlines()[0])
    assert during["collector_on_after_load"] is False


def test_a_failing_job_still_fails_with_its_traceback(entries):
    proc = _job(entries, "fail")
    assert proc.returncode == 1
    assert "ValueError: the job failed" in proc.stderr
    assert json.loads(proc.stdout.splitlines()[0])["frozen_while_working"] == 0


@pytest.mark.parametrize("entry", ["no_such_module_here:run", "json:no_such_function"])
def test_a_missing_entry_point_fails_and_leaves_the_collector_on(entry):
    import gc

    from podium.glue import load_entry

    with pytest.raises((ImportError, AttributeError)):
        load_entry(entry)
    assert gc.isenabled()
