"""The task interface of the DAG's stages: what its one rule per stage asks of a task plug-in.

The rules are the same for every task (``workflow/rules``): train {model} x {fold}, predict
the test images, gather a model's folds into its entry, blend and stack entries, post-process
them, rank them on the leaderboard, write, score and plot the submission. A plug-in registers
a :class:`TaskStage` for the tasks it serves: the inputs each stage reads besides the ones
every task has (the manifest's labels, the packed masks), the files its predictions live in,
and the entry points that do the work, named as ``module:function`` and imported only inside
the job, which hands them a :class:`podium.glue.StageJob`. Naming them, rather than importing
them here, keeps this module free of tasks and lets a rule's code hash cover exactly the entry
point's modules: a change to the segmentation trainer reruns no classification job. The rules
read this module at parse time only; no job imports it, so a new field reruns nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from podium.errors import PodiumInputError

FOLD_FILES = {"weights": "model.pt", "history": "history.csv", "metrics": "metrics.json"}
"""What every fold writes besides its task's predictions."""

ENTRY_FILES = {"oof": "oof.parquet", "test": "test.parquet", "cv": "cv.json"}
"""What every leaderboard entry holds besides its task's payload: the OOF and test index
(with the task's predictions where they fit a table) and its CV scores."""

@dataclass(frozen=True, kw_only=True)
class TaskStage:
    """A task family's part in every rule after the packed images and folds. Input paths are
    relative to the results folder; a fold's outputs to ``models/{model}/fold{k}/``; an
    entry's files to its folder (``models/{model}/``, ``ensemble/{name}/``,
    ``postprocess/{entry}+{post}/``). Entry points are ``module:function`` taking a
    :class:`podium.glue.StageJob`."""

    # before the models: the module registering its targets at ingest and folds, the
    # embedded demos it writes as a competition folder (name in competition.embedded: entry
    # point; the job's settings are ``name``, ``max_images`` and the config keys of
    # ``embedded_params``), the targets it packs beside the images (file in preprocess/:
    # entry point; rule ``pack_<stem>``), and what it asks of preprocessing
    targets: str  # the module whose import registers the task's targets (ingest, folds)
    # the module whose import registers the task's own metrics (podium.metrics.register_metric;
    # None: the metric core's label metrics), for the jobs that run shared code only (the
    # leaderboard); the plug-in's own modules register them by importing its package
    metrics: str | None = None
    embedded: Mapping[str, str] = field(default_factory=dict)
    embedded_params: Mapping[str, str] = field(default_factory=dict)
    packed: Mapping[str, str] = field(default_factory=dict)
    resize_modes: tuple[str, ...] | None = None  # None: every preprocess.resize
    preprocess_fixed: Mapping[str, Any] = field(default_factory=dict)  # keys it sets itself
    # models: train {model} x {fold}, predict the test images, gather the folds
    train: str
    predict: str
    gather: str  # a model's folds into its entry: OOF for every train row, test, cv.json
    train_inputs: Mapping[str, str] = field(default_factory=dict)
    fold_outputs: Mapping[str, str] = field(default_factory=dict)
    test_outputs: Mapping[str, str] = field(default_factory=dict)
    # what scoring an entry against the train truth reads (gather, blends, post-processing),
    # and what it reads besides when a config key is set ({"competition.instances": {...}})
    truth_inputs: Mapping[str, str] = field(default_factory=dict)
    truth_when: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # the files of an entry: ENTRY_FILES and the task's payload
    entry_outputs: Mapping[str, str] = field(default_factory=lambda: dict(ENTRY_FILES))
    # the entry files later stages read: {"oof": ..., "test": ...}; blend and stack jobs get
    # them as lists over the models, ``oofs`` and ``tests``
    predictions: Mapping[str, str] = field(
        default_factory=lambda: {"oof": "oof.parquet", "test": "test.parquet"})
    # entries: blends, stackers (None: the task has none), post-processors
    blend: str
    postprocess: str
    stack: str | None = None
    blend_methods: tuple[str, ...] | None = None  # None: every registered blend
    post_methods: tuple[str, ...] | None = None  # None: every registered post-processor
    # a post-processor that only fits when a config key is set: {method: (key, refusal)}
    post_needs: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    # the submission from the leaderboard's best entry, its held-out score (embedded demos)
    # and the report's plots; *_params name config keys ("submission.values") the job reads
    submit: str
    score: str
    plot: str
    submit_inputs: Mapping[str, str] = field(default_factory=dict)
    submit_params: Mapping[str, str] = field(default_factory=dict)
    score_inputs: Mapping[str, str] = field(default_factory=dict)
    score_params: Mapping[str, str] = field(default_factory=dict)
    plot_inputs: Mapping[str, str] = field(default_factory=dict)
    plots: Mapping[str, str] = field(default_factory=dict)  # the task's own, in plots/
    row_weights: bool = False  # trains on adversarial validation's weights when asked
    pseudo_labels: bool = False  # round-2 models on confident test predictions (test.parquet)
    # the config check's look-ups of each model entry, before any job runs: (entry point,
    # the model keys whose values it takes, "task" for the competition's); it is called with
    # those values and the config key of the first ("models.<name>.<key>") and raises
    # PodiumInputError naming it. A look-up that passed is remembered by entry point and
    # values (podium.configcheck), so a config whose names were all seen imports nothing.
    model_checks: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @staticmethod
    def module_of(entry: str) -> str:
        """``podium.tasks.classify.fit`` of ``podium.tasks.classify.fit:train_fold_job``."""
        return entry.split(":", 1)[0]

    @property
    def entry_points(self) -> dict[str, str]:
        """Every entry point by its field's name (``stack`` only where the task has one)."""
        names = ("train", "predict", "gather", "blend", "stack", "postprocess", "submit",
                 "score", "plot")
        points = {n: getattr(self, n) for n in names if getattr(self, n) is not None}
        points.update({f"check {'+'.join(keys)}": entry for entry, keys in self.model_checks})
        points.update({f"embedded {k}": v for k, v in self.embedded.items()})
        points.update({f"pack {k}": v for k, v in self.packed.items()})
        return points


_STAGES: dict[str, TaskStage] = {}


def register_stage(tasks: Iterable[str], stage: TaskStage) -> None:
    """Serve ``tasks`` (``competition.task`` values) with ``stage``."""
    for task in tasks:
        _STAGES[task] = stage


def registered_stages() -> tuple[str, ...]:
    """The ``competition.task`` values a plug-in's stage serves (the schema's enum must equal
    them); import podium.tasks.stages first."""
    return tuple(sorted(_STAGES))


def task_stage(task: str) -> TaskStage:
    """The registered stage of ``task``; import podium.tasks.stages first."""
    try:
        return _STAGES[task]
    except KeyError:
        raise PodiumInputError(
            f"config key competition.task: no task plug-in trains models for {task!r} "
            f"(registered: {', '.join(sorted(_STAGES)) or 'none; import podium.tasks.stages'})."
        ) from None
