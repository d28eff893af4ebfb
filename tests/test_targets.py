"""The targets interface ingest and folds ask of a task (podium.data.targets): every task of
the schema's competition.task enum has a registered implementation, and each gives folds what
to stratify on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from podium.data.targets import registered_tasks, targets_for
from podium.errors import PodiumInputError
from podium.schema import load_schema
from podium.task import TaskSpec
from podium.tasks.classify.targets import LabelTargets
from podium.tasks.segment.targets import MaskTargets


def test_every_task_has_its_targets() -> None:
    tasks = load_schema()["properties"]["competition"]["properties"]["task"]["enum"]
    assert set(registered_tasks()) == set(tasks)
    assert isinstance(targets_for("segmentation"), MaskTargets)
    assert all(isinstance(targets_for(t), LabelTargets) for t in tasks if t != "segmentation")


def test_an_unknown_task_is_refused_by_key() -> None:
    with pytest.raises(PodiumInputError, match="competition.task: 'multi_class' is not "
                                               "supported.*Did you mean multiclass"):
        targets_for("multi_class")


@pytest.mark.parametrize(("task", "classes", "labels", "expected", "counted"), [
    ("multiclass", ("a", "b", "c"), ["b", "a", "c", "b"], [1, 0, 2, 1], ("a", "b", "c")),
    ("ordinal", ("0", "1", "2"), ["2", "0", "1"], [2.0, 0.0, 1.0], ("0", "1", "2")),
    ("regression", (), ["0.5", "2.25"], [0.5, 2.25], None),
    ("multilabel", ("x", "y"), ["y", "x y"], [[0, 1], [1, 1]], ("x", "y")),
])
def test_classification_folds_stratify_on_the_encoded_labels(task, classes, labels, expected,
                                                             counted) -> None:
    spec = TaskSpec(task=task, target="t", classes=classes, metric="accuracy", id_column="id")
    got, names = targets_for(task).stratification(pd.Series(labels), spec)
    np.testing.assert_array_equal(got, np.array(expected))
    assert names == counted


def test_segmentation_folds_stratify_on_empty_masks_and_area_tertiles() -> None:
    spec = TaskSpec(task="segmentation", target="rle", classes=("mask",), metric="dice",
                    id_column="id")
    rles = pd.Series(["", "1 2", "1 10", "5 100", "", "3 4 10 4", "1 50 60 50"])
    labels, names = targets_for("segmentation").stratification(rles, spec)
    assert names is None  # masks are not classes to count against the folds
    assert labels[0] == labels[4] == 0 and (labels[[1, 2, 3, 5, 6]] > 0).all()
    assert labels[1] < labels[3]
