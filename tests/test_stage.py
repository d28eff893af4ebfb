"""The task stage interface: every task has a registered stage whose entry points exist and
whose files fit together, a job sees its rule as the entry point expects, and an unknown task
is refused by its config key."""

from __future__ import annotations

import importlib
import subprocess
import sys
from types import SimpleNamespace

import pytest

import podium.tasks.stages  # noqa: F401  (registers every task's model stage)
from podium.data.targets import targets_for
from podium.errors import PodiumInputError
from podium.glue import StageJob
from podium.schema import load_schema
from podium.stage import FOLD_FILES, TaskStage, registered_stages, task_stage


@pytest.mark.parametrize("task", registered_stages())
def test_every_task_has_a_stage_whose_entry_points_exist(task):
    stage = task_stage(task)
    assert {"train", "predict", "gather", "blend", "postprocess", "submit", "score",
            "plot"} <= set(stage.entry_points)
    importlib.import_module(stage.targets)  # registers the task's targets at ingest
    assert type(targets_for(task)).__module__ == stage.targets
    for entry in stage.entry_points.values():
        module, _, function = entry.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), entry
        assert TaskStage.module_of(entry) == module
    # the shared leaderboard job knows the task's metrics from the metric core and the
    # stage's metrics module alone (a fresh interpreter that imports nothing else)
    from podium.metrics import METRICS

    scoring = sorted(name for name, metric in METRICS.items() if task in metric.tasks)
    assert scoring, task
    register = f"import {stage.metrics}; " if stage.metrics else ""
    probe = (f"import sys; from podium import metrics; {register}"
             f"sys.exit(sorted(set({scoring!r}) - set(metrics.METRICS)) or 0)")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert run.returncode == 0, (task, run.stdout, run.stderr)
    # the config check's look-ups read keys this task's models have (or the task itself)
    from podium.schema import model_keys, model_kind

    for entry, keys in stage.model_checks:
        assert set(keys) <= {*model_keys(model_kind(task)), "task"}, entry
    # a fold's files never collide: the shared ones, the task's OOF and its test predictions
    names = [*FOLD_FILES.values(), *stage.fold_outputs.values(), *stage.test_outputs.values()]
    keys = [*FOLD_FILES, *stage.fold_outputs]
    assert len(set(names)) == len(names) and len(set(keys)) == len(keys)
    assert stage.fold_outputs and stage.test_outputs
    # every entry has the files the leaderboard and the later stages read, and its
    # predictions are among them
    assert {"oof", "test", "cv"} <= set(stage.entry_outputs)
    assert set(stage.predictions) == {"oof", "test"}
    assert set(stage.predictions.values()) <= set(stage.entry_outputs.values())
    # what a stage offers is what the schema knows
    schema = load_schema()
    blends = schema["properties"]["ensemble"]["properties"]["blends"]
    posts = schema["properties"]["postprocess"]["additionalProperties"]["properties"]
    assert set(stage.blend_methods or ()) <= set(
        blends["additionalProperties"]["properties"]["method"]["enum"])
    assert set(stage.post_methods or ()) <= set(posts["method"]["enum"])
    # each config key a submission or score reads exists in the schema
    for dotted in (*stage.submit_params.values(), *stage.score_params.values()):
        node = schema
        for part in dotted.split("."):
            node = node["properties"][part]
        assert "default" in node or "type" in node, dotted


def test_a_job_sees_its_rules_inputs_params_and_name():
    """StageJob.of reads a Snakemake job: named inputs and outputs, the config entry, the
    name of what it makes (a post-processed entry is ``entry+post``) and the other params."""
    from snakemake.iocontainers import InputFiles, OutputFiles, Params, Wildcards

    def named(cls, **items):
        return cls(fromdict=items)

    smk = SimpleNamespace(
        input=named(InputFiles, oof="a/oof.parquet", tests=["m1/t", "m2/t"]),
        output=named(OutputFiles, cv="b/cv.json"),
        params=named(Params, settings={"method": "thresholds_f1"}, entry="m:f", code="h",
                     names=["x", "y"]),
        wildcards=named(Wildcards, entry="mean", post="f1"), threads=3)
    job = StageJob.of(smk)
    assert job.name == "mean+f1" and job.fold is None and job.threads == 3
    assert job.inputs == {"oof": "a/oof.parquet", "tests": ["m1/t", "m2/t"]}
    assert job.outputs == {"cv": "b/cv.json"}
    assert job.settings == {"method": "thresholds_f1"}
    assert job.options == {"names": ["x", "y"], "source": "mean"}
    smk.wildcards = named(Wildcards, model="unet", fold="2")
    job = StageJob.of(smk)
    assert (job.name, job.fold) == ("unet", 2)


def test_an_unknown_task_is_refused_by_its_key():
    with pytest.raises(PodiumInputError, match=r"competition.task: .*'detection'.*segmentation"):
        task_stage("detection")
