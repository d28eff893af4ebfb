"""The model stages' task interface: what the DAG's one ``train_model``, ``predict_test`` and
``gather_model`` rule ask of a task plug-in.

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
class ModelJob:
    """One job about one model as the entry points receive it: the rule's named inputs and
    outputs (paths; a list for a fold-by-fold input), the model's config entry, its name, the
    fold (train and predict jobs), threads and, for training, the folder that keeps each epoch
    for resuming."""

    inputs: Mapping[str, Any]
    outputs: Mapping[str, str]
    settings: Mapping[str, Any]
    name: str
    fold: int | None = None
    threads: int = 1
    resume_dir: str | None = None

    @classmethod
    def of(cls, smk: Any) -> ModelJob:
        """The job of a running Snakemake script (its ``snakemake`` object)."""
        params, wildcards = smk.params, smk.wildcards
        fold = getattr(wildcards, "fold", None)
        return cls(dict(smk.input.items()), dict(smk.output.items()),
                   getattr(params, "settings", {}), wildcards.model,
                   None if fold is None else int(fold), smk.threads,
                   getattr(params, "resume_dir", None))


@dataclass(frozen=True)
class ModelStage:
    """A task family's part in the train, predict and gather rules. Paths are relative to the
    results folder (inputs) or to ``models/{model}/fold{k}/`` (a fold's outputs). The gather
    job gets each fold file as ``fold_<key>``, a list over the folds."""

    train: str  # "module:function" taking a ModelJob
    predict: str
    gather: str  # a model's folds into its entry: OOF for every train row, test, cv.json
    train_inputs: Mapping[str, str] = field(default_factory=dict)
    fold_outputs: Mapping[str, str] = field(default_factory=dict)
    test_outputs: Mapping[str, str] = field(default_factory=dict)
    gather_inputs: Mapping[str, str] = field(default_factory=dict)
    entry_outputs: Mapping[str, str] = field(default_factory=dict)  # in models/{model}/
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


def run_entry(entry: str, job: ModelJob) -> Any:
    """Import ``module:function`` and call it with ``job``."""
    module, _, function = entry.partition(":")
    return getattr(importlib.import_module(module), function)(job)
