"""Mask classes: one binary mask per image, or several classes (Severstal's four defects,
Understanding Clouds' four cloud types), each pixel in any number of them.

Kaggle writes several classes as one CSV row per (image, class): the class in a column of its
own (``ImageId,ClassId,EncodedPixels``) or appended to the image id (``Image_Label`` holding
``0011165.jpg_Fish``), and the sample submission has the same rows. podium keeps one row per
image instead: the classes' encodings joined by ``|`` in class order, so a binary mask (one
encoding) is stored exactly as before. Packed masks hold the classes as the bits of one uint8
per pixel (bit k: class k), so several classes cost one binary mask's memory and crops, flips
and nearest-neighbour resizes move them like one mask.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from podium.errors import PodiumInputError
from podium.tasks.segment.options import SegmentOptions
from podium.tasks.segment.rle import INSTANCE_JOIN, is_empty

CLASS_JOIN = "|"
MAX_CLASSES = 8  # bits of the packed uint8
BINARY_CLASSES = ("mask",)  # the one class of a binary competition


@dataclass(frozen=True)
class ClassRows:
    """How a competition's CSVs name the class of a row: ``class_column`` (its own column) or
    ``class_separator`` (``<image id><separator><class>`` in the id column); neither: one row
    per image."""

    id_column: str
    class_column: str | None = None
    class_separator: str | None = None

    def __post_init__(self) -> None:
        if self.class_column is not None and self.class_separator is not None:
            raise PodiumInputError(
                "config keys competition.class_column and competition.class_separator are both "
                "set; a CSV names the class either in its own column or after the image id, so "
                "set one of them to null.")
        if self.class_separator == "":
            raise PodiumInputError("config key competition.class_separator is empty; set the "
                                   "text between image id and class (often '_') or null.")

    @classmethod
    def of(cls, source: Any) -> ClassRows:
        """The class rows of a competition layout or task spec (its ``id_column`` and the
        plug-in's ``class_column`` and ``class_separator`` options)."""
        options = SegmentOptions.of(source)
        return cls(source.id_column, options.class_column, options.class_separator)

    @property
    def per_class(self) -> bool:
        """Whether the CSVs hold one row per (image, class)."""
        return self.class_column is not None or self.class_separator is not None

    def split(self, table: pd.DataFrame, path: object) -> tuple[pd.Series, pd.Series | None]:
        """Each row's image id and class (None when rows are images), index kept."""
        ids = table[self.id_column]
        if self.class_column is not None:
            if self.class_column not in table.columns:
                raise PodiumInputError(
                    f"{path}: no column {self.class_column!r} (config key "
                    f"competition.class_column); the file has columns {list(table.columns)}.")
            return ids, table[self.class_column].astype(str)
        if self.class_separator is None:
            return ids, None
        parts = ids.str.rpartition(self.class_separator)
        bad = parts[1] == ""
        if bad.any():
            row = int(bad.idxmax()) + 2
            raise PodiumInputError(
                f"{path} line {row}: id {ids[bad].iloc[0]!r} has no "
                f"{self.class_separator!r} before a class (config key "
                "competition.class_separator); ids must read <image id><separator><class>.")
        return parts[0], parts[2]

    def image_ids(self, table: pd.DataFrame, path: object) -> pd.Series:
        """The image ids of a CSV: with rows per class the distinct ones in order of first
        appearance, indexed by the row that first names each (so a problem names its line)."""
        images, _ = self.split(table, path)
        return images[~images.duplicated()] if self.per_class else images


def _natural_key(value: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", value))


def infer_classes(classes: pd.Series) -> tuple[str, ...]:
    """Class names in natural order (``2`` before ``10``)."""
    return tuple(sorted({str(c) for c in classes}, key=_natural_key))


def check_class_count(classes: Sequence[str], key: str = "competition.classes") -> None:
    if not 1 <= len(classes) <= MAX_CLASSES:
        raise PodiumInputError(
            f"config key {key}: {len(classes)} mask classes; podium packs masks as the bits of "
            f"one byte, so 1 to {MAX_CLASSES} classes are supported.")


def collapse_class_rows(table: pd.DataFrame, rows: ClassRows, target: str,
                        classes: Sequence[str] | None, path: object
                        ) -> tuple[pd.DataFrame, tuple[str, ...], list[str]]:
    """One row per image from one row per (image, class): ``target`` holds the class
    encodings joined by ``|`` in class order (a class without a row is empty), the id column
    the image id, every other column its first row's value. Returns the table, the classes
    (``classes`` or those named in the file) and problems by line: unknown classes, and a
    class given twice for one image."""
    images, names = rows.split(table, path)
    classes = tuple(str(c) for c in classes) if classes is not None else infer_classes(names)
    check_class_count(classes)
    position = {c: k for k, c in enumerate(classes)}
    problems: list[str] = []
    encodings: dict[str, list[str]] = {}
    line_of: dict[tuple[str, str], int] = {}
    for row, image, name, rle in zip(table.index, images, names, table[target], strict=True):
        line = int(row) + 2
        if name not in position:
            problems.append(f"{path} line {line}: class {name!r} is not one of the mask "
                            f"classes {list(classes)} (config key competition.classes)")
            continue
        slots = encodings.setdefault(image, [""] * len(classes))
        if (image, name) in line_of and not (is_empty(rle) or is_empty(slots[position[name]])):
            problems.append(f"{path} line {line}: image {image!r} class {name!r} already has a "
                            f"mask on line {line_of[image, name]}; give one row per image and "
                            "class")
            continue
        line_of.setdefault((image, name), line)
        if not is_empty(rle):
            slots[position[name]] = rle.strip()
    first = ~images.duplicated()
    out = table.loc[first].copy()
    out[rows.id_column] = images[first]
    out[target] = [join_rles(encodings.get(i, [""] * len(classes))) for i in images[first]]
    if rows.class_column is not None:
        out = out.drop(columns=rows.class_column)
    return out, classes, problems


def collapse_instance_rows(table: pd.DataFrame, id_column: str, target: str
                           ) -> pd.DataFrame:
    """One row per image from one row per object (DSB 2018): ``target`` holds the image's
    instance encodings joined by ``;`` (empty cells, an image listed without objects, drop
    out), every other column its first row's value."""
    images = table[id_column]
    parts: dict[str, list[str]] = {}
    for image, rle in zip(images, table[target], strict=True):
        found = parts.setdefault(image, [])
        if not is_empty(rle):
            found.append(str(rle).strip())
    out = table.loc[~images.duplicated()].copy()
    out[target] = [INSTANCE_JOIN.join(parts[i]) for i in out[id_column]]
    return out


def join_rles(rles: Sequence[str]) -> str:
    """One manifest cell from each class's encoding, in class order."""
    return CLASS_JOIN.join("" if is_empty(r) else str(r).strip() for r in rles)


def class_rles(cell: object, n_classes: int) -> list[str]:
    """Each class's encoding of one manifest cell (empty strings for no mask)."""
    if is_empty(cell):
        return [""] * n_classes
    parts = str(cell).split(CLASS_JOIN)
    if len(parts) != n_classes:
        raise ValueError(f"{len(parts)} class encodings for {n_classes} mask classes")
    return ["" if is_empty(p) else p.strip() for p in parts]


def pack_bits(masks: Sequence[np.ndarray]) -> np.ndarray:
    """``(H, W)`` uint8 with bit k set where ``masks[k]`` is nonzero."""
    packed = np.zeros(np.shape(masks[0]), dtype=np.uint8)
    for k, mask in enumerate(masks):
        packed |= (np.asarray(mask) != 0).astype(np.uint8) << k
    return packed


def unpack_bits(packed: np.ndarray, n_classes: int) -> np.ndarray:
    """``(..., H, W)`` packed masks as ``(..., K, H, W)`` 0/1 uint8, one plane per class."""
    packed = np.asarray(packed)
    shifts = np.arange(n_classes, dtype=np.uint8).reshape(n_classes, 1, 1)
    return (packed[..., None, :, :] >> shifts) & 1


def presence_strata(cells: pd.Series, n_classes: int) -> np.ndarray:
    """Which classes each image holds, as one integer (bit k: class k present): folds then hold
    the same share of each combination (Severstal's habit)."""
    return np.array([sum(1 << k for k, rle in enumerate(class_rles(c, n_classes))
                         if not is_empty(rle)) for c in cells], dtype=np.int64)
