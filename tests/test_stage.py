"""The model stage interface: every task has a registered stage whose entry points exist,
and an unknown task is refused by its config key."""

from __future__ import annotations

import importlib

import pytest

import podium.tasks.stages  # noqa: F401  (registers every task's model stage)
from podium.errors import PodiumInputError
from podium.task import TASKS
from podium.train.stage import FOLD_FILES, ModelStage, model_stage


@pytest.mark.parametrize("task", TASKS)
def test_every_task_has_a_stage_whose_entry_points_exist(task):
    stage = model_stage(task)
    for entry in (stage.train, stage.predict, stage.gather):
        module, _, function = entry.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), entry
        assert ModelStage.module_of(entry) == module
    # a fold's files never collide: the shared ones, the task's OOF and its test predictions
    names = [*FOLD_FILES.values(), *stage.fold_outputs.values(), *stage.test_outputs.values()]
    keys = [*FOLD_FILES, *stage.fold_outputs]
    assert len(set(names)) == len(names) and len(set(keys)) == len(keys)
    assert stage.fold_outputs and stage.test_outputs
    # every entry has the files the leaderboard and the later stages read
    assert {"oof", "test", "cv"} <= set(stage.entry_outputs)


def test_an_unknown_task_is_refused_by_its_key():
    with pytest.raises(PodiumInputError, match=r"competition.task: .*'detection'.*segmentation"):
        model_stage("detection")
