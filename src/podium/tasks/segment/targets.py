"""The segment plug-in's targets at ingest: masks as run-length encodings or mask images.

A train.csv row holds an image's mask (or, with several classes, one row per image and class;
in an instance competition one row per object), encoded in ``competition.rle_format``, or the
masks come as image files (``competition.train_masks``), which ingest encodes once. Every
encoding is decoded against its image's size and refused by line, id and class when it does
not fit, with the formats it does decode as.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from podium.data.ingest import require_columns
from podium.data.layout import CompetitionLayout
from podium.data.targets import TaskTargets, register_targets
from podium.errors import PodiumInputError, Problems
from podium.task import TARGET_COLUMN, TaskSpec
from podium.tasks.segment import TASK
from podium.tasks.segment.classes import (
    BINARY_CLASSES,
    ClassRows,
    check_class_count,
    class_rles,
    collapse_class_rows,
    collapse_instance_rows,
    join_rles,
)
from podium.tasks.segment.masks import stratification_labels
from podium.tasks.segment.options import SegmentOptions
from podium.tasks.segment.rle import (
    ORDERS,
    decodes_as,
    get_format,
    rle_decode,
    rle_encode,
)


class MaskTargets(TaskTargets):
    """Targets of segmentation competitions: masks, several classes, instances."""

    def check_layout(self, layout: CompetitionLayout) -> None:
        options = SegmentOptions.of(layout)
        if options.mask_order not in ORDERS:
            raise PodiumInputError(
                f"config key competition.mask_order: {options.mask_order!r} is not one of "
                f"{', '.join(ORDERS)} (F: top to bottom first, C: left to right first).")
        get_format(options.rle_format, options.mask_order)  # the pixel order fits the format
        if layout.label_columns:
            raise PodiumInputError(
                "config key competition.label_columns needs task multilabel, not "
                f"{layout.task!r}.")
        if (layout.metric == "instance_map") != bool(options.instances):
            raise PodiumInputError(
                "config keys competition.metric and competition.instances disagree: "
                "instance_map scores instances, so set metric: instance_map together with "
                "instances: true (a train.csv row per object), not metric "
                f"{layout.metric!r} with instances {str(bool(options.instances)).lower()}.")

    def train_table(self, train: pd.DataFrame, path: Path, layout: CompetitionLayout,
                    problems: Problems
                    ) -> tuple[pd.DataFrame, CompetitionLayout, tuple[str, ...] | None]:
        train, classes = _segmentation_table(train, path, layout, problems)
        return train, layout, classes

    def image_ids(self, table: pd.DataFrame, path: Path, layout: CompetitionLayout,
                  listed: bool = False) -> pd.Series:
        options = SegmentOptions.of(layout)
        if listed and options.train_masks:  # train.csv has a row per image
            return table[layout.id_column]
        return ClassRows.of(layout).image_ids(table, path)

    def normalized(self, labels: pd.Series, layout: CompetitionLayout,
                   classes: tuple[str, ...]) -> pd.Series:
        """One spelling of "no mask" (Kaggle CSVs use "" and "-1") and of class cells."""
        return labels.map(lambda v: _normalized_masks(v, len(classes)))

    def check_external(self, labels: pd.Series, path: Path, column: str,
                       layout: CompetitionLayout, classes: tuple[str, ...],
                       problems: Problems) -> None:
        raise PodiumInputError(
            "config key competition.external: external sources are not supported in "
            "segmentation competitions yet; add their images and masks to the competition's "
            "own train.csv and train/ instead.")

    def stratification(self, labels: pd.Series, spec: TaskSpec
                       ) -> tuple[np.ndarray, tuple[str, ...] | None]:
        """Empty masks and mask-area tertiles (several classes: which classes an image
        holds), as the SIIM and Airbus solutions stratify."""
        return stratification_labels(labels, spec.n_classes), None

    def side_files(self, layout: CompetitionLayout) -> tuple[str, ...]:
        """Mask images (``competition.train_masks``) are no unlisted train images."""
        train_masks = SegmentOptions.of(layout).train_masks
        return (train_masks,) if train_masks else ()

    def finish_train(self, frame: pd.DataFrame, ids: pd.Series, source: str,
                     layout: CompetitionLayout, classes: tuple[str, ...],
                     problems: Problems) -> None:
        """Encode mask images once (they have the image's own size: nothing to check
        again), or decode every encoding against its image's size."""
        options = SegmentOptions.of(layout)
        if options.train_masks and source == "competition":
            frame[TARGET_COLUMN] = _encode_mask_images(frame, layout, classes, problems)
            return
        line_of = {image_id: int(row) + 2 for row, image_id in ids.items()}
        _check_masks(frame, line_of, layout.root / layout.train_csv, layout, classes,
                     problems)


def _normalized_masks(cell: object, n_classes: int) -> str:
    """The class encodings of one manifest cell in one spelling; a cell with the wrong number
    of classes is left for the mask check to report."""
    try:
        return join_rles(class_rles(cell, n_classes))
    except ValueError:
        return str(cell)


def _segmentation_table(train: pd.DataFrame, path: Path, layout: CompetitionLayout,
                        problems: Problems) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The train table of a segmentation competition with one row per image, and its mask
    classes: ``("mask",)`` for one binary mask, else ``competition.classes`` or the classes
    the per-class rows name. Masks given as images are read once the images are inspected."""
    options = SegmentOptions.of(layout)
    rows = ClassRows.of(layout)
    configured = tuple(str(c) for c in layout.classes) if layout.classes else None
    if options.instances:
        return _instance_table(train, path, layout, rows.per_class or bool(configured)
                               and len(configured) > 1), configured or BINARY_CLASSES
    if configured is not None:
        check_class_count(configured)
    if options.train_masks:  # train.csv has a row per image; class rows are the sample's
        if "{class}" in options.train_masks and configured is None:
            raise PodiumInputError(
                f"config key competition.train_masks: {options.train_masks!r} has one file per "
                "class ({class}); list the classes in competition.classes.")
        return train.assign(**{layout.target: ""}), configured or BINARY_CLASSES
    if rows.per_class:
        require_columns(train, path, [(layout.target, "competition.target")])
        train, classes, found = collapse_class_rows(train, rows, layout.target, configured,
                                                    path)
        for problem in found:
            problems.add(problem)
        return train, classes
    if configured is not None and len(configured) > 1:
        raise PodiumInputError(
            f"config key competition.classes lists {len(configured)} mask classes but "
            f"{path.name} has one mask per row; for several classes set "
            "competition.class_column (or class_separator) for rows per image and class, or "
            "competition.train_masks for mask images.")
    return train, configured or BINARY_CLASSES


def _instance_table(train: pd.DataFrame, path: Path, layout: CompetitionLayout,
                    several_classes: bool) -> pd.DataFrame:
    """A train.csv with one row per object, collapsed to one row per image (its instances
    joined by ``;``). Instances are one binary class given as encodings."""
    if several_classes or SegmentOptions.of(layout).train_masks:
        raise PodiumInputError(
            "config key competition.instances needs one mask class given as run-length "
            "encoded rows (one per object); unset competition.class_column, class_separator, "
            "train_masks and keep competition.classes to one class.")
    require_columns(train, path, [(layout.id_column, "competition.id_column"),
                                   (layout.target, "competition.target")])
    return collapse_instance_rows(train, layout.id_column, layout.target)


def _check_masks(frame: pd.DataFrame, line_of: dict[str, int], path: Path,
                 layout: CompetitionLayout, classes: tuple[str, ...],
                 problems: Problems) -> None:
    """Every run-length encoding must decode inside its image (named by line, id and, with
    several classes, the class)."""
    options = SegmentOptions.of(layout)
    for image_id, cell, height, width in zip(frame["id"], frame[TARGET_COLUMN],
                                             frame["height"], frame["width"], strict=True):
        where = f"{path} line {line_of.get(image_id, '?')}: id {image_id!r}"
        try:
            rles = class_rles(cell, len(classes))
        except ValueError as err:
            problems.add(f"{where}: {layout.target} holds {err}; an encoding of a binary mask "
                         "is run lengths only")
            continue
        for name, rle in zip(classes, rles, strict=True):
            shape = (int(height), int(width))
            try:
                rle_decode(rle, shape, *options.codec)
            except ValueError as err:
                label = f" class {name!r}" if len(classes) > 1 else ""
                problems.add(f"{where}{label}: {layout.target} is not a {options.rle_format} "
                             f"encoding of a mask of the {height}x{width} image ({err}); "
                             f"{_format_hint(rle, shape, options)}")


def _format_hint(rle: object, shape: tuple[int, int], options: SegmentOptions) -> str:
    """What to check when a mask string fails: the formats it does decode under, if any
    (still a problem: a string valid in two formats is read in the configured one)."""
    current = (options.rle_format, options.mask_order)
    other = decodes_as(rle, shape, exclude=current)
    setting = (f"competition.rle_format {options.rle_format!r} and mask_order "
               f"{options.mask_order!r}")
    if not other:
        return f"check {setting}"
    names = " or ".join(f"rle_format {f!r} with mask_order {o!r}" for f, o in other)
    return f"it does decode as {names}; check {setting}"


def _read_mask_image(path: Path, image_id: str, height: int, width: int,
                     problems: Problems) -> np.ndarray | None:
    """One mask file at its image's size (colour masks: the brightest channel), or None with
    the problem reported by path."""
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED) if path.is_file() else None
    if mask is None:
        problems.add(f"{path}: mask of train image {image_id!r} is missing or unreadable "
                     "(config key competition.train_masks)")
        return None
    if mask.ndim == 3:
        mask = mask.max(axis=2)
    if mask.shape != (height, width):
        problems.add(f"{path}: mask is {mask.shape[0]}x{mask.shape[1]} but train image "
                     f"{image_id!r} is {height}x{width}")
        return None
    return mask


def _class_masks(layout: CompetitionLayout, pattern: str, classes: tuple[str, ...],
                 image_id: str, height: int, width: int, problems: Problems
                 ) -> list[np.ndarray] | None:
    """Each class's 0/1 mask of one train image: one file per class when the pattern
    (``competition.train_masks``) holds ``{class}`` (nonzero pixels: the class), else one file
    whose nonzero pixels are the object (binary) or whose pixel value k is the k-th class
    (several classes, 0: background)."""
    if "{class}" in pattern:
        masks = [_read_mask_image(layout.root / pattern.format(id=image_id, **{"class": c}),
                                  image_id, height, width, problems) for c in classes]
        return None if any(m is None for m in masks) else [m != 0 for m in masks]
    path = layout.root / pattern.format(id=image_id)
    mask = _read_mask_image(path, image_id, height, width, problems)
    if mask is None or len(classes) == 1:
        return None if mask is None else [mask != 0]
    if int(mask.max()) > len(classes):
        problems.add(f"{path}: mask holds pixel value {int(mask.max())} but there are "
                     f"{len(classes)} classes (values 1..{len(classes)}, 0 background; config "
                     "key competition.classes)")
        return None
    return [mask == k + 1 for k in range(len(classes))]


def _encode_mask_images(frame: pd.DataFrame, layout: CompetitionLayout,
                        classes: tuple[str, ...], problems: Problems) -> list[str]:
    """Each train image's mask images (``competition.train_masks``) as its manifest cell:
    missing, unreadable or differently sized masks are problems named by path."""
    options = SegmentOptions.of(layout)
    encoded = []
    for image_id, height, width in zip(frame["id"], frame["height"], frame["width"],
                                       strict=True):
        masks = _class_masks(layout, options.train_masks, classes, image_id, int(height),
                             int(width), problems)
        encoded.append("" if masks is None else
                       join_rles([rle_encode(m, *options.codec) for m in masks]))
    return encoded


register_targets((TASK,), MaskTargets())
