"""Ingest: read a competition folder, validate all of it, write the manifest.

Everything that can be wrong with the input is checked here, before any heavy work, and all
problems are reported at once (file, row and what to do), so a user fixes their folder in one
round instead of one crash per training job.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pydicom
from PIL import Image
from tqdm import tqdm

from podium.errors import PodiumInputError
from podium.metrics import check_metric_for_task, check_multilabel_rule
from podium.schema import schema_field
from podium.segment.classes import (
    BINARY_CLASSES,
    ClassRows,
    check_class_count,
    class_rles,
    collapse_class_rows,
    collapse_instance_rows,
    join_rles,
)
from podium.segment.rle import (
    ORDERS,
    decodes_as,
    get_format,
    rle_decode,
    rle_encode,
)
from podium.tables import write_csv, write_parquet
from podium.task import (
    LABEL_SEPARATOR,
    SEGMENTATION,
    TARGET_COLUMN,
    TASKS,
    VALUE_TASKS,
    TaskSpec,
    split_labels,
)

log = logging.getLogger(__name__)

MAX_REPORTED = 20
MANIFEST_COLUMNS = ("id", "split", "path", TARGET_COLUMN, "height", "width", "channels", "md5",
                    "pixel_md5", "source", "train_only")
"""podium's own manifest columns; the competition's column names appear in none of them."""
GROUP_COLUMN = "group"  # the manifest's column of competition.group_column's groups
_UNSAFE_ID = re.compile(r"[/\\]|^\.\.?$|\.\.")


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
    # segmentation: the RLE format (podium.segment.rle), mask images per train id
    # ("masks/{id}.png"), rows per (image, class) named by a column or after the image id
    # ("<id>_<class>"), a train.csv row per object (DSB 2018)
    rle_format: str = schema_field("competition", "rle_format")
    train_masks: str | None = schema_field("competition", "train_masks")
    class_column: str | None = schema_field("competition", "class_column")
    class_separator: str | None = schema_field("competition", "class_separator")
    instances: bool = schema_field("competition", "instances")
    multilabel_rule: str = schema_field("competition", "multilabel_rule")
    encoding: str = schema_field("competition", "encoding")  # of train.csv, sample_submission

    @property
    def class_rows(self) -> ClassRows:
        """How the CSVs of a segmentation competition name each row's mask class."""
        return ClassRows(self.id_column, self.class_column, self.class_separator)

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


@dataclass(frozen=True)
class ImageInfo:
    """What ingest learns from one image file: its size, channels, and hashes of its bytes
    and of its decoded pixels (the same image re-saved losslessly keeps the pixel hash)."""

    height: int
    width: int
    channels: int
    md5: str
    pixel_md5: str


class _Problems:
    """Collects validation problems so they can be reported together."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, message: str) -> None:
        self.items.append(message)

    def raise_if_any(self, what: str) -> None:
        if not self.items:
            return
        shown = "\n  - ".join(self.items[:MAX_REPORTED])
        more = len(self.items) - MAX_REPORTED
        tail = f"\n  ... and {more} more" if more > 0 else ""
        raise PodiumInputError(f"{what}: {len(self.items)} problem(s)\n  - {shown}{tail}")


def _read_table(path: Path, config_key: str, encoding: str = "utf-8",
                encoding_key: str = "competition.encoding") -> pd.DataFrame:
    if not path.is_file():
        raise PodiumInputError(
            f"{path}: file not found (config key {config_key}). "
            "Point the key at the file relative to competition.dir."
        )
    check_text_encoding(path, encoding, encoding_key)
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as err:
        raise PodiumInputError(f"{path}: not a readable CSV file ({err}).") from err


def check_text_encoding(path: Path, encoding: str,
                        encoding_key: str = "competition.encoding") -> None:
    """Refuse a file that is not text in ``encoding``, naming the line, column and byte
    offset of its first undecodable byte (a train.csv saved as latin-1 by a spreadsheet)."""
    data = path.read_bytes()
    try:
        data.decode(encoding)
    except LookupError:
        raise PodiumInputError(
            f"config key {encoding_key}: Python knows no text encoding {encoding!r}; use e.g. "
            "utf-8, latin-1 or cp1252.") from None
    except UnicodeDecodeError as err:
        line_start = data.rfind(b"\n", 0, err.start) + 1
        line = data.count(b"\n", 0, err.start) + 1
        raise PodiumInputError(
            f"{path} line {line}, column {err.start - line_start + 1}: byte "
            f"0x{data[err.start]:02x} at byte offset {err.start} is not {encoding} text "
            f"({err.reason}; the encoding tried is config key {encoding_key}: {encoding}). "
            f"Set {encoding_key} to the file's encoding (often latin-1 or cp1252 for files "
            "saved by spreadsheets) or save the file as UTF-8.") from None


def _require_columns(frame: pd.DataFrame, path: Path, columns: Iterable[tuple[str, str]]) -> None:
    for column, key in columns:
        if column not in frame.columns:
            raise PodiumInputError(
                f"{path}: no column {column!r} (config key {key}); "
                f"the file has columns {list(frame.columns)}."
            )


def _check_ids(ids: pd.Series, path: Path, problems: _Problems) -> None:
    """Ids become file names downstream: no empties, no duplicates, no path tricks."""
    for row, value in ids.items():
        line = int(row) + 2  # header is line 1
        if value == "":
            problems.add(f"{path} line {line}: empty id")
        elif _UNSAFE_ID.search(value):
            problems.add(
                f"{path} line {line}: id {value!r} contains a path separator or '..'; "
                "ids must be plain names"
            )
    duplicated = ids[ids.duplicated(keep=False) & (ids != "")]
    for value, rows in duplicated.groupby(duplicated).groups.items():
        lines = ", ".join(str(int(r) + 2) for r in rows)
        problems.add(f"{path}: id {value!r} appears more than once (lines {lines})")


def resolve_image_path(layout: CompetitionLayout, template: str, image_id: str) -> Path:
    """The image file of one id, from a path template such as ``train/{id}.png``."""
    return layout.root / template.format(id=image_id)


def _check_image_column(paths: pd.Series, csv_path: Path, problems: _Problems) -> None:
    """Per-row image paths must be relative and stay inside the competition folder."""
    for row, value in paths.items():
        line = int(row) + 2
        parts = Path(value).parts
        if value.strip() == "":
            problems.add(f"{csv_path} line {line}: empty image path")
        elif Path(value).is_absolute() or ".." in parts:
            problems.add(
                f"{csv_path} line {line}: image path {value!r} must be relative to "
                "competition.dir and must not contain '..'"
            )


def _ids_on_disk(layout: CompetitionLayout, template: str) -> set[str] | None:
    """Ids of the files a ``dir/{id}.ext`` template matches, to catch strays and gaps."""
    prefix, sep, suffix = template.partition("{id}")
    if not sep or "/" in suffix or "{" in suffix:
        return None
    folder = (layout.root / prefix).parent if not prefix.endswith("/") else layout.root / prefix
    name_prefix = "" if prefix.endswith("/") else Path(prefix).name
    if not folder.is_dir():
        return set()
    found = set()
    for entry in folder.iterdir():
        name = entry.name
        if name.startswith(name_prefix) and name.endswith(suffix) and entry.is_file():
            found.add(name[len(name_prefix) : len(name) - len(suffix) if suffix else None])
    return found


def _template_regex(template: str) -> re.Pattern:
    """A path template (``masks/{id}_{class}.png``) as a pattern over relative paths."""
    parts = re.split(r"(\{id\}|\{class\})", template)
    return re.compile("".join(".+" if part in ("{id}", "{class}") else re.escape(part)
                              for part in parts))


def unlisted_train_images(layout: CompetitionLayout, listed_ids: Iterable[str],
                          listed_paths: Iterable[Path] = ()) -> list[str]:
    """Files beside the train images that train.csv does not list (relative to the
    competition folder, sorted): what the train template matches without a row, or with
    ``image_column`` the files in the listed images' folders with their suffixes. Mask files
    (``train_masks``) are not images."""
    masks = _template_regex(layout.train_masks) if layout.train_masks else None
    if layout.image_column is None:
        on_disk = _ids_on_disk(layout, layout.train_images)
        if on_disk is None:
            return []
        found = [layout.train_images.format(id=i) for i in sorted(on_disk - set(listed_ids))]
    else:
        listed = {p.resolve() for p in listed_paths}
        folders = {p.parent for p in listed}
        suffixes = {p.suffix.lower() for p in listed}
        found = sorted(str(f.relative_to(layout.root.resolve()))
                       for folder in folders if folder.is_dir() for f in folder.iterdir()
                       if f.is_file() and f.suffix.lower() in suffixes and f not in listed
                       and f.is_relative_to(layout.root.resolve()))
    return [f for f in found if masks is None or not masks.fullmatch(f)]


def _note_unlisted(layout: CompetitionLayout, listed_ids: pd.Series, paths: list[Path],
                   train_path: Path) -> None:
    unlisted = unlisted_train_images(layout, listed_ids, paths)
    if unlisted:
        log.warning("%d image file%s in %s %s no row in %s and %s not used (e.g. %s)",
                    len(unlisted), "s" if len(unlisted) > 1 else "", layout.root,
                    "have" if len(unlisted) > 1 else "has", train_path.name,
                    "are" if len(unlisted) > 1 else "is", ", ".join(unlisted[:5]))


DICOM_SUFFIXES = (".dcm", ".dicom")


def _pixel_md5(kind: str, shape: tuple[int, ...], pixels: bytes) -> str:
    digest = hashlib.md5(f"{kind}{shape}".encode())
    digest.update(pixels)
    return digest.hexdigest()


def _inspect_dicom(data: bytes) -> tuple[int, int, int, str]:
    """Height, width, channels and pixel hash of a DICOM file; decoding shows truncation."""
    dataset = pydicom.dcmread(io.BytesIO(data))
    pixels = dataset.pixel_array  # raises on truncated or corrupt pixel data
    if pixels.size == 0:
        raise ValueError("the DICOM file holds no pixels")
    pixel_md5 = _pixel_md5(str(pixels.dtype), pixels.shape, pixels.tobytes())
    return (int(dataset.Rows), int(dataset.Columns), int(dataset.get("SamplesPerPixel") or 1),
            pixel_md5)


def inspect_image(path: Path) -> ImageInfo:
    """Decode the whole file (so truncation shows) and hash its bytes and pixels; DICOM
    through pydicom."""
    data = path.read_bytes()
    md5 = hashlib.md5(data).hexdigest()
    if path.suffix.lower() in DICOM_SUFFIXES or data[128:132] == b"DICM":
        height, width, channels, pixel_md5 = _inspect_dicom(data)
        return ImageInfo(height, width, channels, md5, pixel_md5)
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        width, height = image.size
        channels = len(image.getbands())
        pixel_md5 = _pixel_md5(image.mode, image.size, image.tobytes())
    return ImageInfo(height, width, channels, md5, pixel_md5)


def _inspect_or_report(path: Path) -> ImageInfo | str:
    if not path.is_file():
        return f"{path}: image file not found"
    try:
        return inspect_image(path)
    except Exception as err:  # PIL and pydicom raise many types for corrupt data
        return f"{path}: unreadable or truncated image ({type(err).__name__}: {err})"


def _report_bad_labels(
    labels: pd.Series, path: Path, column: str, classes: tuple[str, ...] | None,
    classes_name: str, problems: _Problems, multilabel: bool = False,
) -> None:
    """Empty labels, and (when ``classes`` is given) labels outside them, by line; in a
    multilabel task every space-separated label of a cell is checked."""
    allowed = set(classes) if classes is not None else None
    for row, value in labels.items():
        line = int(row) + 2  # header is line 1
        if value.strip() == "":
            problems.add(f"{path} line {line}: label column {column!r} is empty")
            continue
        if allowed is None:
            continue
        unknown = [v for v in (split_labels(value) if multilabel else [value])
                   if v not in allowed]
        if unknown:
            problems.add(f"{path} line {line}: label {unknown[0]!r} is not one of "
                         f"{classes_name} {list(classes)[:20]}")


def normalized_labels(labels: pd.Series, spec_task: str, classes: tuple[str, ...]
                      ) -> pd.Series:
    """Multilabel cells rewritten as their label set in class order ("7 3 3" -> "3 7"), and
    numbers in one spelling ("3.0" -> "3" for grades), so equal labels compare equal (dedup's
    label conflicts); other tasks are left as they are."""
    if spec_task == "ordinal":
        return labels.map(lambda v: str(int(float(v))))
    if spec_task == "regression":
        return labels.map(lambda v: repr(float(v)))
    if spec_task == SEGMENTATION:  # one spelling of "no mask": Kaggle CSVs use "", "-1"
        return labels.map(lambda v: _normalized_masks(v, len(classes)))
    if spec_task != "multilabel":
        return labels
    order = {c: i for i, c in enumerate(classes)}
    return labels.map(lambda v: LABEL_SEPARATOR.join(sorted(set(split_labels(v)),
                                                            key=order.__getitem__)))


def _normalized_masks(cell: object, n_classes: int) -> str:
    """The class encodings of one manifest cell in one spelling; a cell with the wrong number
    of classes is left for the mask check to report."""
    try:
        return join_rles(class_rles(cell, n_classes))
    except ValueError:
        return str(cell)


def _image_paths(root: Path, table: pd.DataFrame, id_column: str, image_column: str | None,
                 template: str) -> list[Path]:
    """Each row's image: from its path column when there is one, else from the template."""
    if image_column is not None:
        return [root / p for p in table[image_column]]
    return [root / template.format(id=i) for i in table[id_column]]


def _check_labels(
    labels: pd.Series, path: Path, layout: CompetitionLayout, problems: _Problems
) -> tuple[str, ...]:
    """Labels must be present and belong to the task's classes; returns the class order
    (the grades for ordinal tasks, none for regression; segmentation's mask classes come from
    :func:`_segmentation_table`)."""
    if layout.task in VALUE_TASKS:
        return _check_values(labels, path, layout.target, layout.task, layout.classes,
                             problems)
    multilabel = layout.task == "multilabel"
    if layout.classes is None:
        present = (v for cell in labels for v in (split_labels(cell) if multilabel else [cell]))
        classes = tuple(sorted({v for v in present if v.strip() != ""}, key=_class_sort_key))
        _report_bad_labels(labels, path, layout.target, None, "", problems)
    else:
        classes = tuple(str(c) for c in layout.classes)
        _report_bad_labels(labels, path, layout.target, classes,
                           "the classes in config key competition.classes", problems,
                           multilabel)
    if layout.task == "binary" and len(classes) != 2:
        problems.add(
            f"{path}: task is binary but column {layout.target!r} has {len(classes)} classes "
            f"{list(classes)[:10]}; set competition.task to multiclass or fix the labels"
        )
    _check_two_classes(labels, path, layout.target, multilabel, problems)
    return classes


def _check_two_classes(labels: pd.Series, path: Path, column: str, multilabel: bool,
                       problems: _Problems) -> None:
    """A classifier needs two classes in train: one class everywhere is nothing to learn
    (usually competition.target names the wrong column)."""
    cells = labels[labels.str.strip() != ""]
    present = {v for cell in cells for v in (split_labels(cell) if multilabel else [cell])}
    if len(present) == 1:
        (only,) = present
        problems.add(
            f"{path}: every one of its {len(cells)} labelled rows has the class {only!r} in "
            f"column {column!r}; a classifier needs at least two classes in train. Check "
            "that competition.target names the label column, or add images of other classes")


def _segmentation_table(train: pd.DataFrame, path: Path, layout: CompetitionLayout,
                        problems: _Problems) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The train table of a segmentation competition with one row per image, and its mask
    classes: ``("mask",)`` for one binary mask, else ``competition.classes`` or the classes
    the per-class rows name. Masks given as images are read once the images are inspected."""
    if layout.mask_order not in ORDERS:
        raise PodiumInputError(
            f"config key competition.mask_order: {layout.mask_order!r} is not one of "
            f"{', '.join(ORDERS)} (F: top to bottom first, C: left to right first).")
    get_format(layout.rle_format, layout.mask_order)
    rows = layout.class_rows
    configured = tuple(str(c) for c in layout.classes) if layout.classes else None
    if layout.instances:
        return _instance_table(train, path, layout, rows.per_class or bool(configured)
                               and len(configured) > 1), configured or BINARY_CLASSES
    if configured is not None:
        check_class_count(configured)
    if layout.train_masks:  # train.csv has a row per image; class rows are the sample's
        if "{class}" in layout.train_masks and configured is None:
            raise PodiumInputError(
                f"config key competition.train_masks: {layout.train_masks!r} has one file per "
                "class ({class}); list the classes in competition.classes.")
        return train.assign(**{layout.target: ""}), configured or BINARY_CLASSES
    if rows.per_class:
        _require_columns(train, path, [(layout.target, "competition.target")])
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
    if several_classes or layout.train_masks:
        raise PodiumInputError(
            "config key competition.instances needs one mask class given as run-length "
            "encoded rows (one per object); unset competition.class_column, class_separator, "
            "train_masks and keep competition.classes to one class.")
    _require_columns(train, path, [(layout.id_column, "competition.id_column"),
                                   (layout.target, "competition.target")])
    return collapse_instance_rows(train, layout.id_column, layout.target)


def _labels_from_columns(train: pd.DataFrame, path: Path, layout: CompetitionLayout
                         ) -> tuple[pd.DataFrame, CompetitionLayout]:
    """A multilabel train.csv with one 0/1 column per label, turned into the space-separated
    target column the rest of podium reads; the label columns are the classes, in order."""
    if layout.task != "multilabel":
        raise PodiumInputError(
            f"config key competition.label_columns needs task multilabel, not {layout.task!r}."
        )
    columns = list(layout.label_columns)
    _require_columns(train, path, [(c, "competition.label_columns") for c in columns])
    problems = _Problems()
    for column in columns:
        for row, value in train[column].items():
            if value.strip() not in ("0", "1"):
                problems.add(f"{path} line {int(row) + 2}: label column {column!r} holds "
                             f"{value!r}, not 0 or 1")
    problems.raise_if_any(f"{path}: label columns")
    chosen = train[columns].apply(lambda col: col.str.strip() == "1")
    target = [LABEL_SEPARATOR.join(c for c, on in zip(columns, row, strict=True) if on)
              for row in chosen.itertuples(index=False)]
    empty = [int(row) + 2 for row, cell in zip(train.index, target, strict=True) if not cell]
    if empty:
        raise PodiumInputError(
            f"{path} lines {empty[:10]}: no label column is 1; every image needs a label."
        )
    return (train.assign(**{layout.target: target}),
            replace(layout, classes=tuple(columns), label_columns=None))


def _check_values(labels: pd.Series, path: Path, column: str, task: str,
                  classes: tuple[str, ...] | None, problems: _Problems) -> tuple[str, ...]:
    """Regression targets must be finite numbers, ordinal ones whole numbers (grades)."""
    numbers = pd.to_numeric(labels.str.strip(), errors="coerce")
    ordinal = task == "ordinal"
    for row, value in labels.items():
        number = numbers.loc[row]
        if not np.isfinite(number) or (ordinal and number != round(number)):
            kind = "a whole-number grade" if ordinal else "a finite number"
            problems.add(f"{path} line {int(row) + 2}: target {value!r} in column "
                         f"{column!r} is not {kind} (task {task})")
    if not ordinal:
        return ()
    if classes is not None:
        return tuple(str(int(float(c))) for c in classes)
    grades = numbers[np.isfinite(numbers)]
    return tuple(str(int(g)) for g in sorted(set(grades.round().astype(int))))


def _class_sort_key(value: str) -> tuple[int, float, str]:
    """Finite numeric labels sort as numbers (2 before 10), the rest as strings after them;
    ties break on the string, so the order never depends on set iteration."""
    try:
        number = float(value)
    except ValueError:
        return (1, 0.0, value)
    return (0, number, value) if math.isfinite(number) else (1, 0.0, value)


def _inspect_images(
    split: str, ids: pd.Series, paths: list[Path], skip_bad: bool, threads: int,
    problems: _Problems, skipped: list[dict],
) -> pd.DataFrame | None:
    """Manifest rows of one split's images; unreadable ones become problems, or skipped
    rows when ``skip_bad`` (train only)."""
    with ThreadPoolExecutor(max(1, threads)) as pool:
        infos = list(tqdm(pool.map(_inspect_or_report, paths), total=len(paths),
                          desc=f"inspect {split}", mininterval=5))
    bad = np.array([isinstance(info, str) for info in infos], dtype=bool)
    if split == "train" and skip_bad and bad.any():
        skipped += [{"id": i, "path": str(p), "problem": info}
                    for i, p, info, b in zip(ids, paths, infos, bad, strict=True) if b]
        log.warning("skipping %d unreadable train images (see skipped.csv)", int(bad.sum()))
    else:
        for info in np.asarray(infos, dtype=object)[bad]:
            problems.add(info)
    if problems.items:
        return None
    good = [info for info, b in zip(infos, bad, strict=True) if not b]
    return pd.DataFrame({
        "id": ids.to_numpy()[~bad],
        "split": split,
        "path": [str(p.resolve()) for p, b in zip(paths, bad, strict=True) if not b],
        "height": [i.height for i in good],
        "width": [i.width for i in good],
        "channels": [i.channels for i in good],
        "md5": [i.md5 for i in good],
        "pixel_md5": [i.pixel_md5 for i in good],
    })


def _read_external(
    source: ExternalSource, layout: CompetitionLayout, taken: set[str],
    classes: tuple[str, ...], problems: _Problems,
) -> tuple[str, pd.Series, pd.Series, list[Path], str, bool]:
    """Validate one external source; its ids become ``<name>__<id>`` in the manifest."""
    key = f"competition.external[{source.name}]"
    root = Path(source.dir)
    if not root.is_dir():
        raise PodiumInputError(f"{root}: external folder not found (config key {key}.dir).")
    path = root / source.train_csv
    table = _read_table(path, f"{key}.train_csv", source.encoding or layout.encoding,
                        f"{key}.encoding" if source.encoding else "competition.encoding")
    id_column = source.id_column or layout.id_column
    target = source.target or layout.target
    _require_columns(table, path, [(id_column, f"{key}.id_column"), (target, f"{key}.target")])
    if source.image_column is not None:
        _require_columns(table, path, [(source.image_column, f"{key}.image_column")])
        _check_image_column(table[source.image_column], path, problems)
    _check_ids(table[id_column], path, problems)
    if layout.task in VALUE_TASKS:
        _check_values(table[target], path, target, layout.task, None, problems)
    else:
        _report_bad_labels(table[target], path, target, classes, "the competition's classes",
                           problems, layout.task == "multilabel")
    ids = source.name + "__" + table[id_column]
    for value in sorted(set(ids) & taken):
        problems.add(f"{path}: external id {value!r} clashes with a competition id")
    paths = _image_paths(root, table, id_column, source.image_column, source.train_images)
    return "train", ids, table[target], paths, source.name, not source.validate


def _check_layout(layout: CompetitionLayout) -> None:
    if layout.task not in TASKS:
        raise PodiumInputError(
            f"config key competition.task: {layout.task!r} is not supported; "
            f"use one of {list(TASKS)}."
        )
    check_metric_for_task(layout.metric, layout.task)
    check_multilabel_rule(layout.multilabel_rule)
    if (layout.metric == "instance_map") != bool(layout.instances):
        raise PodiumInputError(
            "config keys competition.metric and competition.instances disagree: instance_map "
            "scores instances, so set metric: instance_map together with instances: true (a "
            f"train.csv row per object), not metric {layout.metric!r} with instances "
            f"{str(bool(layout.instances)).lower()}.")
    if layout.bad_train_images not in ("error", "skip"):
        raise PodiumInputError(
            f"config key competition.bad_train_images: {layout.bad_train_images!r} is not "
            "'error' or 'skip'."
        )
    _check_distinct_columns(layout)
    _check_root(layout)


def _check_distinct_columns(layout: CompetitionLayout) -> None:
    """The id, target, image, group and class columns are different columns of train.csv
    (whatever their names: podium's tables keep its own columns apart from them)."""
    key_of: dict[str, str] = {}
    for key in ("id_column", "target", "image_column", "group_column", "class_column"):
        column = getattr(layout, key)
        if column is None:
            continue
        if column in key_of:
            raise PodiumInputError(
                f"config keys competition.{key_of[column]} and competition.{key} both name "
                f"column {column!r}; each names its own column of {layout.train_csv}.")
        key_of[column] = key


def _check_root(layout: CompetitionLayout) -> None:
    if not layout.root.is_dir():
        raise PodiumInputError(
            f"{layout.root}: competition folder not found (config key competition.dir)."
        )


@dataclass
class _TrainSide:
    """The validated train table and what it implies: the layout (label columns folded into
    one target), the classes, and the (split, ids, labels, paths, source, train_only) parts."""

    layout: CompetitionLayout
    table: pd.DataFrame
    classes: tuple[str, ...]
    parts: list[tuple]


def _validate_train(layout: CompetitionLayout, problems: _Problems) -> _TrainSide:
    train_path = layout.root / layout.train_csv
    train = _read_table(train_path, "competition.train_csv", layout.encoding)
    if layout.label_columns:
        train, layout = _labels_from_columns(train, train_path, layout)
    segment_classes = None
    if layout.task == SEGMENTATION:
        train, segment_classes = _segmentation_table(train, train_path, layout, problems)
    _require_columns(
        train, train_path, [(layout.id_column, "competition.id_column"),
                            (layout.target, "competition.target")]
    )
    for column, key in ((layout.image_column, "image_column"),
                        (layout.group_column, "group_column")):
        if column is not None:
            _require_columns(train, train_path, [(column, f"competition.{key}")])
    train_ids = train[layout.id_column]
    _check_ids(train_ids, train_path, problems)
    classes = segment_classes or _check_labels(train[layout.target], train_path, layout,
                                               problems)
    if layout.image_column is not None:
        _check_image_column(train[layout.image_column], train_path, problems)
    external = [_read_external(e, layout, set(train_ids), classes, problems)
                for e in layout.external]
    paths = _image_paths(layout.root, train, layout.id_column, layout.image_column,
                         layout.train_images)
    _note_unlisted(layout, train_ids, paths, train_path)
    parts = [("train", train_ids, train[layout.target], paths, "competition", False),
             *external]
    return _TrainSide(layout, train, classes, parts)


def _validate_test(layout: CompetitionLayout, problems: _Problems,
                   train_ids: Iterable[str]) -> list[tuple]:
    """The test part, after checking the sample submission's ids against the test folder and
    against the train ids (an image is either train or test)."""
    sample_path = layout.root / layout.sample_submission
    sample = _read_table(sample_path, "competition.sample_submission", layout.encoding)
    _require_columns(sample, sample_path, [(layout.id_column, "competition.id_column")])
    test_ids = (layout.class_rows.image_ids(sample, sample_path)
                if layout.task == SEGMENTATION else sample[layout.id_column])
    _check_ids(test_ids, sample_path, problems)
    for value in sorted(set(train_ids) & set(test_ids) - {""}):
        problems.add(
            f"id {value!r} is in both {layout.train_csv} and {sample_path.name}; "
            "an image must be either train or test"
        )
    on_disk = _ids_on_disk(layout, layout.test_images)
    if on_disk is not None:
        folder = Path(layout.test_images).parent
        for value in sorted(on_disk - set(test_ids))[:MAX_REPORTED]:
            problems.add(
                f"{layout.root / layout.test_images.format(id=value)}: test image has no row in "
                f"{sample_path.name}; the sample submission's ids must match the images in "
                f"{folder}/"
            )
        for value in sorted(set(test_ids) - on_disk - {""})[:MAX_REPORTED]:
            problems.add(
                f"{sample_path.name}: id {value!r} has no image "
                f"{layout.root / layout.test_images.format(id=value)}"
            )
    paths = [resolve_image_path(layout, layout.test_images, i) for i in test_ids]
    return [("test", test_ids, None, paths, "competition", False)]


def _train_ids_of(layout: CompetitionLayout) -> pd.Series:
    """The train ids alone, for the test side's clash check (no labels, no images)."""
    path = layout.root / layout.train_csv
    table = _read_table(path, "competition.train_csv", layout.encoding)
    _require_columns(table, path, [(layout.id_column, "competition.id_column")])
    if layout.task == SEGMENTATION and not layout.train_masks:
        return layout.class_rows.image_ids(table, path)
    return table[layout.id_column]


def _check_masks(frame: pd.DataFrame, line_of: dict[str, int], path: Path,
                 layout: CompetitionLayout, classes: tuple[str, ...],
                 problems: _Problems) -> None:
    """Every run-length encoding must decode inside its image (named by line, id and, with
    several classes, the class)."""
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
                rle_decode(rle, shape, layout.mask_order, layout.rle_format)
            except ValueError as err:
                label = f" class {name!r}" if len(classes) > 1 else ""
                problems.add(f"{where}{label}: {layout.target} is not a {layout.rle_format} "
                             f"encoding of a mask of the {height}x{width} image ({err}); "
                             f"{_format_hint(rle, shape, layout)}")


def _format_hint(rle: object, shape: tuple[int, int], layout: CompetitionLayout) -> str:
    """What to check when a mask string fails: the formats it does decode under, if any
    (still a problem: a string valid in two formats is read in the configured one)."""
    current = (layout.rle_format, layout.mask_order)
    other = decodes_as(rle, shape, exclude=current)
    setting = (f"competition.rle_format {layout.rle_format!r} and mask_order "
               f"{layout.mask_order!r}")
    if not other:
        return f"check {setting}"
    names = " or ".join(f"rle_format {f!r} with mask_order {o!r}" for f, o in other)
    return f"it does decode as {names}; check {setting}"


def _read_mask_image(path: Path, image_id: str, height: int, width: int,
                     problems: _Problems) -> np.ndarray | None:
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


def _class_masks(layout: CompetitionLayout, classes: tuple[str, ...], image_id: str,
                 height: int, width: int, problems: _Problems) -> list[np.ndarray] | None:
    """Each class's 0/1 mask of one train image: one file per class when the pattern holds
    ``{class}`` (nonzero pixels: the class), else one file whose nonzero pixels are the object
    (binary) or whose pixel value k is the k-th class (several classes, 0: background)."""
    pattern = layout.train_masks
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
                        classes: tuple[str, ...], problems: _Problems) -> list[str]:
    """Each train image's mask images (``competition.train_masks``) as its manifest cell:
    missing, unreadable or differently sized masks are problems named by path."""
    encoded = []
    for image_id, height, width in zip(frame["id"], frame["height"], frame["width"],
                                       strict=True):
        masks = _class_masks(layout, classes, image_id, int(height), int(width), problems)
        encoded.append("" if masks is None else
                       join_rles([rle_encode(m, layout.mask_order, layout.rle_format)
                                  for m in masks]))
    return encoded


def _inspect_parts(layout: CompetitionLayout, parts: list[tuple], classes: tuple[str, ...],
                   threads: int, problems: _Problems, skipped: list[dict]) -> list[pd.DataFrame]:
    frames = []
    for split, ids, labels, paths, source, train_only in parts:
        frame = _inspect_images(split, ids, paths, layout.bad_train_images == "skip", threads,
                                problems, skipped)
        if frame is None:
            continue
        keep = ids.isin(frame["id"]).to_numpy()
        frame[TARGET_COLUMN] = (normalized_labels(labels, layout.task, classes).to_numpy()[keep]
                                if labels is not None else None)
        if layout.task == SEGMENTATION and labels is not None:
            if layout.train_masks and source == "competition":
                # encoded from masks of the image's own size: nothing to check again
                frame[TARGET_COLUMN] = _encode_mask_images(frame, layout, classes, problems)
            else:
                line_of = {image_id: int(row) + 2 for row, image_id in ids.items()}
                _check_masks(frame, line_of, layout.root / layout.train_csv, layout, classes,
                             problems)
        frames.append(frame.assign(source=source, train_only=train_only))
    problems.raise_if_any(f"images of competition folder {layout.root} failed validation")
    return frames


def _assemble(layout: CompetitionLayout, frames: list[pd.DataFrame],
              train: pd.DataFrame | None) -> pd.DataFrame:
    manifest = pd.concat(frames, ignore_index=True)[list(MANIFEST_COLUMNS)]
    if layout.group_column is not None:
        groups = (train.set_index(layout.id_column)[layout.group_column] if train is not None
                  else pd.Series(dtype=str))
        groups = groups.mask(groups.str.strip() == "")
        manifest[GROUP_COLUMN] = manifest["id"].map(groups).astype("string")
    manifest[TARGET_COLUMN] = manifest[TARGET_COLUMN].astype("string")
    return manifest


def _write_train_side(layout: CompetitionLayout, classes: tuple[str, ...],
                      task_path: str | Path, skipped: list[dict],
                      skipped_path: str | Path | None) -> None:
    TaskSpec(task=layout.task, target=layout.target, classes=classes, metric=layout.metric,
             id_column=layout.id_column, mask_order=layout.mask_order,
             rle_format=layout.rle_format,
             class_column=layout.class_column,
             class_separator=layout.class_separator,
             instances=layout.instances,
             multilabel_rule=layout.multilabel_rule).save(task_path)
    if skipped_path is not None:
        write_csv(pd.DataFrame(skipped, columns=["id", "path", "problem"]), skipped_path)


def _inspect_and_write(train_side: _TrainSide, parts: list[tuple], threads: int,
                       problems: _Problems, manifest_path: str | Path, task_path: str | Path,
                       skipped_path: str | Path | None) -> pd.DataFrame:
    """Read every image of ``parts``, then write the manifest, the task spec and the skipped
    train images (all or nothing: a problem stops before anything is written)."""
    layout, skipped = train_side.layout, []
    frames = _inspect_parts(layout, parts, train_side.classes, threads, problems, skipped)
    manifest = _assemble(layout, frames, train_side.table)
    write_parquet(manifest, manifest_path)
    _write_train_side(layout, train_side.classes, task_path, skipped, skipped_path)
    _log_counts(manifest, train_side.classes)
    return manifest


def _log_counts(manifest: pd.DataFrame, classes: tuple[str, ...] | None = None) -> None:
    counts = manifest["split"].value_counts()
    log.info("manifest: %d train and %d test images%s", counts.get("train", 0),
             counts.get("test", 0), f", {len(classes)} classes" if classes is not None else "")


def ingest_competition(
    layout: CompetitionLayout,
    manifest_path: str | Path,
    task_path: str | Path,
    threads: int = 1,
    skipped_path: str | Path | None = None,
) -> pd.DataFrame:
    """Validate the whole competition folder, reporting train and test problems together,
    and write ``manifest.parquet`` and ``task.json`` (what ``podium check`` runs). The
    workflow runs the same checks as :func:`ingest_train` and :func:`ingest_test`."""
    _check_layout(layout)
    problems = _Problems()
    train_side = _validate_train(layout, problems)
    layout = train_side.layout
    test_parts = _validate_test(layout, problems, train_side.table[layout.id_column])
    problems.raise_if_any(f"competition folder {layout.root} failed validation")
    parts = [train_side.parts[0], *test_parts, *train_side.parts[1:]]  # the manifest's order
    return _inspect_and_write(train_side, parts, threads, problems, manifest_path, task_path,
                              skipped_path)


def ingest_train(
    layout: CompetitionLayout,
    manifest_path: str | Path,
    task_path: str | Path,
    threads: int = 1,
    skipped_path: str | Path | None = None,
) -> pd.DataFrame:
    """Validate the train side (train table, labels, train and external images) and write
    its manifest and ``task.json``. Nothing here reads a test file, so new test images never
    rerun it or anything that only depends on it (folds, training)."""
    _check_layout(layout)
    problems = _Problems()
    train_side = _validate_train(layout, problems)
    layout = train_side.layout
    problems.raise_if_any(f"competition folder {layout.root} failed validation")
    return _inspect_and_write(train_side, train_side.parts, threads, problems, manifest_path,
                              task_path, skipped_path)


def ingest_test(layout: CompetitionLayout, manifest_path: str | Path,
                threads: int = 1) -> pd.DataFrame:
    """Validate the test side (sample submission, test images) and write its manifest. Bad
    test images always stop here: the submission needs a prediction for each."""
    _check_root(layout)
    problems = _Problems()
    parts = _validate_test(layout, problems, _train_ids_of(layout))
    problems.raise_if_any(f"competition folder {layout.root} failed validation")
    frames = _inspect_parts(layout, parts, (), threads, problems, [])
    manifest = _assemble(layout, frames, None)
    write_parquet(manifest, manifest_path)
    _log_counts(manifest)
    return manifest


def merge_manifests(train_path: str | Path, test_path: str | Path,
                    manifest_path: str | Path) -> pd.DataFrame:
    """The whole manifest: train rows (competition, then external), then test rows. Refuses
    an id that is both (an external id can only clash here)."""
    train, test = pd.read_parquet(train_path), pd.read_parquet(test_path)
    clash = sorted(set(train["id"]) & set(test["id"]))
    if clash:
        raise PodiumInputError(
            f"{len(clash)} ids are both train and test images (first: {clash[:5]}); rename "
            "the external source or the files so that each image is either train or test.")
    # the test side has no labels and knows no train-only keys (target, group column), so
    # it takes the train side's columns, missing ones empty
    manifest = pd.concat([train, test.reindex(columns=train.columns)], ignore_index=True)
    write_parquet(manifest, manifest_path)
    return manifest
