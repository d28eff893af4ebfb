"""What ingest asks of a task: how its targets are read, checked and normalised.

Ingest itself (podium.data.ingest) knows files, ids and images, not what a label is: a class,
a label set, a grade, a run-length encoded mask. Each task plug-in (podium.tasks.<name>)
implements :class:`TaskTargets` and registers it for the ``competition.task`` values it
serves; ingest looks the implementation up by the config's task. The data layer imports no
task: the plug-ins import this module, and entry points (the workflow's scripts, ``podium
check``) import :mod:`podium.tasks.plugins`, which registers them all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from podium.errors import PodiumInputError, Problems, did_you_mean

if TYPE_CHECKING:
    from pathlib import Path

    from podium.data.layout import CompetitionLayout
    from podium.task import TaskSpec


class TaskTargets:
    """The targets of one family of tasks at ingest. Every hook gets the competition's
    layout; a problem found in the data is added to ``problems`` (named by file and line) so
    that all of them are reported at once, a problem of the config raises at once."""

    def check_layout(self, layout: CompetitionLayout) -> None:
        """Refuse config keys that do not fit together for this task, before any file is read."""

    def train_table(self, train: pd.DataFrame, path: Path, layout: CompetitionLayout,
                    problems: Problems
                    ) -> tuple[pd.DataFrame, CompetitionLayout, tuple[str, ...] | None]:
        """train.csv as one row per image with its target in ``layout.target``, the layout
        as the rest of ingest reads it, and the classes when the table itself fixes them
        (None: :meth:`check_labels` finds them)."""
        return train, layout, None

    def check_labels(self, labels: pd.Series, path: Path, layout: CompetitionLayout,
                     problems: Problems) -> tuple[str, ...]:
        """Check every train target (by line) and return the classes in their order."""
        raise NotImplementedError

    def image_ids(self, table: pd.DataFrame, path: Path, layout: CompetitionLayout,
                  listed: bool = False) -> pd.Series:
        """The image id of each row of a competition CSV (the sample submission; with
        ``listed``, train.csv read for its ids alone). One row is one image unless the task's
        files hold several rows per image."""
        return table[layout.id_column]

    def normalized(self, labels: pd.Series, layout: CompetitionLayout,
                   classes: tuple[str, ...]) -> pd.Series:
        """The targets in one spelling each, so that equal targets compare equal (dedup's
        label conflicts)."""
        return labels

    def check_external(self, labels: pd.Series, path: Path, column: str,
                       layout: CompetitionLayout, classes: tuple[str, ...],
                       problems: Problems) -> None:
        """Check the targets of an external source against the competition's classes."""
        raise NotImplementedError

    def side_files(self, layout: CompetitionLayout) -> tuple[str, ...]:
        """Path templates (relative to the competition folder, with ``{id}``) of the files
        the task reads beside the train images, such as mask images, which ingest therefore
        does not count as unlisted train images."""
        return ()

    def finish_train(self, frame: pd.DataFrame, ids: pd.Series, source: str,
                     layout: CompetitionLayout, classes: tuple[str, ...],
                     problems: Problems) -> None:
        """Check (or complete, in place) the targets of inspected train images, whose
        ``height`` and ``width`` are known now; ``ids`` keeps train.csv's row index."""


    def stratification(self, labels: pd.Series, spec: TaskSpec
                       ) -> tuple[np.ndarray, tuple[str, ...] | None]:
        """What folds stratify on, from the manifest's train targets (in manifest order):
        class indices, a 0/1 label matrix (iterative stratification) or values (quantile
        bins); and the classes whose counts the folds check against the number of folds
        (None where the labels are not classes)."""
        raise NotImplementedError


_REGISTERED: dict[str, TaskTargets] = {}


def register_targets(tasks: tuple[str, ...], targets: TaskTargets) -> None:
    """Make ``targets`` the implementation for each of ``tasks`` (``competition.task``)."""
    for task in tasks:
        if task in _REGISTERED and _REGISTERED[task] is not targets:
            raise ValueError(f"task {task!r} already has targets {_REGISTERED[task]!r}")
        _REGISTERED[task] = targets


def registered_tasks() -> tuple[str, ...]:
    """The ``competition.task`` values a plug-in serves (the schema's enum must equal them)."""
    return tuple(sorted(_REGISTERED))


def targets_for(task: str) -> TaskTargets:
    """The registered targets of ``task``; an unknown task names the config key."""
    try:
        return _REGISTERED[task]
    except KeyError:
        if not _REGISTERED:
            raise RuntimeError(
                "no task plug-in is registered: import podium.tasks.plugins first (the "
                "workflow's scripts and podium check do).") from None
        raise PodiumInputError(
            f"config key competition.task: {task!r} is not supported; use one of "
            f"{sorted(_REGISTERED)}.{did_you_mean(task, _REGISTERED)}") from None
