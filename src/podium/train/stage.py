"""The model stages' task interface: what the DAG's one ``train_model`` and one
``predict_test`` rule ask of a task plug-in.

The rules are the same for every task. A plug-in registers a :class:`ModelStage` for the
tasks it serves: the inputs its trainer reads besides the packed images and folds (the
manifest's labels, the packed masks), the prediction files a fold writes, and the entry
points that train a fold and predict the test images, named as ``module:function`` and
imported only inside the job. Naming them, rather than importing them here, keeps this layer
free of tasks and lets a rule's code hash cover exactly the entry point's modules: a change to
the segmentation trainer reruns no classification job.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from podium.errors import PodiumInputError

FOLD_FILES = {"weights": "model.pt", "history": "history.csv", "metrics": "metrics.json"}
"""What every fold writes besides its task's predictions."""


@dataclass(frozen=True)
class FoldJob:
    """One train or predict job as the entry points receive it: the rule's named inputs and
    outputs (paths), the model's config entry, the fold, the model's name, threads and,
    for training, the folder that keeps each epoch for resuming."""

    inputs: Mapping[str, str]
    outputs: Mapping[str, str]
    settings: Mapping[str, Any]
    name: str
    fold: int
    threads: int = 1
    resume_dir: str | None = None

    @classmethod
    def of(cls, smk: Any) -> FoldJob:
        """The job of a running Snakemake script (its ``snakemake`` object)."""
        params = smk.params
        return cls(dict(smk.input.items()), dict(smk.output.items()), params.settings,
                   smk.wildcards.model, int(smk.wildcards.fold), smk.threads,
                   getattr(params, "resume_dir", None))


@dataclass(frozen=True)
class ModelStage:
    """A task family's part in the train and predict rules. Paths are relative to the
    results folder (inputs) or to ``models/{model}/fold{k}/`` (outputs)."""

    train: str  # "module:function" taking a FoldJob
    predict: str
    train_inputs: Mapping[str, str] = field(default_factory=dict)
    fold_outputs: Mapping[str, str] = field(default_factory=dict)
    test_outputs: Mapping[str, str] = field(default_factory=dict)
    row_weights: bool = False  # trains on adversarial validation's weights when asked

    @staticmethod
    def module_of(entry: str) -> str:
        """``podium.train.fit`` of ``podium.train.fit:train_fold_job``."""
        return entry.split(":", 1)[0]


_STAGES: dict[str, ModelStage] = {}


def register_stage(tasks: Iterable[str], stage: ModelStage) -> None:
    """Serve ``tasks`` (``competition.task`` values) with ``stage``."""
    for task in tasks:
        _STAGES[task] = stage


def model_stage(task: str) -> ModelStage:
    """The registered stage of ``task``; import podium.tasks.stages first."""
    try:
        return _STAGES[task]
    except KeyError:
        raise PodiumInputError(
            f"config key competition.task: no task plug-in trains models for {task!r} "
            f"(registered: {', '.join(sorted(_STAGES)) or 'none; import podium.tasks.stages'})."
        ) from None


def run_entry(entry: str, job: FoldJob) -> Any:
    """Import ``module:function`` and call it with ``job``."""
    module, _, function = entry.partition(":")
    return getattr(importlib.import_module(module), function)(job)
