"""Where a competition keeps its files and what its columns are: the config's
``competition`` section as ingest and the task plug-ins read it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from podium.errors import PodiumInputError
from podium.schema import foreign_task_key_problems, schema_default, schema_field, task_keys


@dataclass(frozen=True)
class ExternalSource:
    """Another labelled folder in the competition's layout (e.g. an earlier competition)."""

    name: str
    dir: Path
    train_csv: str = schema_field("competition", "external", "train_csv")
    train_images: str = schema_field("competition", "external", "train_images")
    image_column: str | None = schema_field("competition", "external", "image_column")
    id_column: str | None = schema_field("competition", "external", "id_column")
    target: str | None = schema_field("competition", "external", "target")
    validate: bool = schema_field("competition", "external", "validate")
    encoding: str | None = schema_field("competition", "external", "encoding")  # None: ours


@dataclass(frozen=True)
class CompetitionLayout:
    """Where a competition keeps its files, as the config's ``competition`` section says;
    the defaults are the schema's."""

    root: Path
    train_csv: str = schema_field("competition", "train_csv")
    sample_submission: str = schema_field("competition", "sample_submission")
    train_images: str = schema_field("competition", "train_images")
    image_column: str | None = schema_field("competition", "image_column")
    group_column: str | None = schema_field("competition", "group_column")
    label_columns: tuple[str, ...] | None = None
    bad_train_images: str = schema_field("competition", "bad_train_images")
    external: tuple[ExternalSource, ...] = ()
    # the task plug-in's own keys (the schema's x-task: a segmentation competition's RLE
    # format, mask images, class rows, instances), as set; the plug-in reads them with their
    # defaults (podium.schema.task_options)
    options: Mapping[str, Any] = field(default_factory=dict)
    multilabel_rule: str = schema_field("competition", "multilabel_rule")
    encoding: str = schema_field("competition", "encoding")  # of train.csv, sample_submission

    def __post_init__(self) -> None:
        _refuse_foreign_keys(self.options, self.task)

    @classmethod
    def from_config(cls, section: dict, root: str | Path | None = None) -> CompetitionLayout:
        """The layout the config's ``competition`` section describes; ``root`` overrides its
        ``dir`` (the embedded dataset lives in the results folder). A key of another task's
        plug-in, set, is refused: it would be ignored."""
        fields = set(cls.__dataclass_fields__) - {"root", "classes", "external", "label_columns",
                                                   "options"}
        task = section.get("task", schema_default("competition", "task"))
        _refuse_foreign_keys(section, task)
        label_columns = section.get("label_columns")
        classes = section.get("classes")
        return cls(
            root=Path(root if root is not None else section.get("dir") or "."),
            **{k: v for k, v in section.items() if k in fields},
            options={k: section[k] for k in task_keys(task) if k in section},
            classes=tuple(str(c) for c in classes) if classes is not None else None,
            label_columns=tuple(label_columns) if label_columns else None,
            external=tuple(ExternalSource(**{**e, "dir": Path(e["dir"])})
                           for e in section.get("external") or ()),
        )
    test_images: str = schema_field("competition", "test_images")
    id_column: str = schema_field("competition", "id_column")
    target: str = schema_field("competition", "target")
    task: str = schema_field("competition", "task")
    metric: str = schema_field("competition", "metric")
    classes: tuple[str, ...] | None = None


def _refuse_foreign_keys(values: Mapping[str, Any], task: str) -> None:
    """A key of another task's plug-in, set, would be ignored: refuse it by name."""
    problems = foreign_task_key_problems(values, task)
    if problems:
        raise PodiumInputError("\n".join(problems))
