"""Where a competition keeps its files and what its columns are: the config's
``competition`` section as ingest and the task plug-ins read it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from podium.schema import schema_field


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
    mask_order: str = schema_field("competition", "mask_order")
    # segmentation: the RLE format (podium.tasks.segment.rle), mask images per train id
    # ("masks/{id}.png"), rows per (image, class) named by a column or after the image id
    # ("<id>_<class>"), a train.csv row per object (DSB 2018)
    rle_format: str = schema_field("competition", "rle_format")
    train_masks: str | None = schema_field("competition", "train_masks")
    class_column: str | None = schema_field("competition", "class_column")
    class_separator: str | None = schema_field("competition", "class_separator")
    instances: bool = schema_field("competition", "instances")
    multilabel_rule: str = schema_field("competition", "multilabel_rule")
    encoding: str = schema_field("competition", "encoding")  # of train.csv, sample_submission

    @classmethod
    def from_config(cls, section: dict, root: str | Path | None = None) -> CompetitionLayout:
        """The layout the config's ``competition`` section describes; ``root`` overrides its
        ``dir`` (the embedded dataset lives in the results folder)."""
        fields = set(cls.__dataclass_fields__) - {"root", "classes", "external", "label_columns"}
        label_columns = section.get("label_columns")
        classes = section.get("classes")
        return cls(
            root=Path(root if root is not None else section.get("dir") or "."),
            **{k: v for k, v in section.items() if k in fields},
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
