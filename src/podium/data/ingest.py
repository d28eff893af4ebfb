"""Ingest: read a competition folder, validate all of it, write the manifest.

Everything that can be wrong with the input is checked here, before any heavy work, and all
problems are reported at once (file, row and what to do), so a user fixes their folder in one
round instead of one crash per training job.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
from PIL import Image
from tqdm import tqdm

from podium.data.layout import CompetitionLayout, ExternalSource
from podium.data.targets import TaskTargets, targets_for
from podium.errors import MAX_REPORTED, PodiumInputError, Problems
from podium.metrics import check_metric_for_task
from podium.schema import task_options
from podium.tables import write_csv, write_parquet
from podium.task import TARGET_COLUMN, TaskSpec

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = ("id", "split", "path", TARGET_COLUMN, "height", "width", "channels", "md5",
                    "pixel_md5", "source", "train_only")
"""podium's own manifest columns; the competition's column names appear in none of them."""
GROUP_COLUMN = "group"  # the manifest's column of competition.group_column's groups
_UNSAFE_ID = re.compile(r"[/\\]|^\.\.?$|\.\.")


@dataclass(frozen=True)
class ImageInfo:
    """What ingest learns from one image file: its size, channels, and hashes of its bytes
    and of its decoded pixels (the same image re-saved losslessly keeps the pixel hash)."""

    height: int
    width: int
    channels: int
    md5: str
    pixel_md5: str


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


def require_columns(frame: pd.DataFrame, path: Path, columns: Iterable[tuple[str, str]]) -> None:
    for column, key in columns:
        if column not in frame.columns:
            raise PodiumInputError(
                f"{path}: no column {column!r} (config key {key}); "
                f"the file has columns {list(frame.columns)}."
            )


def _check_ids(ids: pd.Series, path: Path, problems: Problems) -> None:
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


def _check_image_column(paths: pd.Series, csv_path: Path, problems: Problems) -> None:
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
                          listed_paths: Iterable[Path] = (),
                          side_files: Iterable[str] = ()) -> list[str]:
    """Files beside the train images that train.csv does not list (relative to the
    competition folder, sorted): what the train template matches without a row, or with
    ``image_column`` the files in the listed images' folders with their suffixes. Files the
    task reads besides (``side_files``: its :meth:`TaskTargets.side_files`) are not images."""
    others = [_template_regex(template) for template in side_files]
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
    return [f for f in found if not any(other.fullmatch(f) for other in others)]


def _note_unlisted(layout: CompetitionLayout, listed_ids: pd.Series, paths: list[Path],
                   train_path: Path, side_files: tuple[str, ...]) -> None:
    unlisted = unlisted_train_images(layout, listed_ids, paths, side_files)
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


def _image_paths(root: Path, table: pd.DataFrame, id_column: str, image_column: str | None,
                 template: str) -> list[Path]:
    """Each row's image: from its path column when there is one, else from the template."""
    if image_column is not None:
        return [root / p for p in table[image_column]]
    return [root / template.format(id=i) for i in table[id_column]]


def _inspect_images(
    split: str, ids: pd.Series, paths: list[Path], skip_bad: bool, threads: int,
    problems: Problems, skipped: list[dict],
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
    classes: tuple[str, ...], targets: TaskTargets, problems: Problems,
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
    require_columns(table, path, [(id_column, f"{key}.id_column"), (target, f"{key}.target")])
    if source.image_column is not None:
        require_columns(table, path, [(source.image_column, f"{key}.image_column")])
        _check_image_column(table[source.image_column], path, problems)
    _check_ids(table[id_column], path, problems)
    targets.check_external(table[target], path, target, layout, classes, problems)
    ids = source.name + "__" + table[id_column]
    for value in sorted(set(ids) & taken):
        problems.add(f"{path}: external id {value!r} clashes with a competition id")
    paths = _image_paths(root, table, id_column, source.image_column, source.train_images)
    return "train", ids, table[target], paths, source.name, not source.validate


def _check_layout(layout: CompetitionLayout) -> TaskTargets:
    """Refuse a layout whose keys do not fit together; the task's targets."""
    targets = targets_for(layout.task)
    check_metric_for_task(layout.metric, layout.task)
    targets.check_layout(layout)
    if layout.bad_train_images not in ("error", "skip"):
        raise PodiumInputError(
            f"config key competition.bad_train_images: {layout.bad_train_images!r} is not "
            "'error' or 'skip'."
        )
    _check_distinct_columns(layout)
    _check_root(layout)
    return targets


def _check_distinct_columns(layout: CompetitionLayout) -> None:
    """The id, target, image and group columns, and the task plug-in's own ``*_column`` keys
    (segmentation's class column), are different columns of train.csv (whatever their names:
    podium's tables keep its own columns apart from them)."""
    key_of: dict[str, str] = {}
    named = {key: getattr(layout, key)
             for key in ("id_column", "target", "image_column", "group_column")}
    named.update((k, v) for k, v in layout.options.items() if k.endswith("_column"))
    for key, column in named.items():
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
    targets: TaskTargets


def _validate_train(layout: CompetitionLayout, targets: TaskTargets,
                    problems: Problems) -> _TrainSide:
    train_path = layout.root / layout.train_csv
    train = _read_table(train_path, "competition.train_csv", layout.encoding)
    train, layout, classes = targets.train_table(train, train_path, layout, problems)
    require_columns(
        train, train_path, [(layout.id_column, "competition.id_column"),
                            (layout.target, "competition.target")]
    )
    for column, key in ((layout.image_column, "image_column"),
                        (layout.group_column, "group_column")):
        if column is not None:
            require_columns(train, train_path, [(column, f"competition.{key}")])
    train_ids = train[layout.id_column]
    _check_ids(train_ids, train_path, problems)
    if classes is None:
        classes = targets.check_labels(train[layout.target], train_path, layout, problems)
    if layout.image_column is not None:
        _check_image_column(train[layout.image_column], train_path, problems)
    external = [_read_external(e, layout, set(train_ids), classes, targets, problems)
                for e in layout.external]
    paths = _image_paths(layout.root, train, layout.id_column, layout.image_column,
                         layout.train_images)
    _note_unlisted(layout, train_ids, paths, train_path, targets.side_files(layout))
    parts = [("train", train_ids, train[layout.target], paths, "competition", False),
             *external]
    return _TrainSide(layout, train, classes, parts, targets)


def _validate_test(layout: CompetitionLayout, targets: TaskTargets, problems: Problems,
                   train_ids: Iterable[str]) -> list[tuple]:
    """The test part, after checking the sample submission's ids against the test folder and
    against the train ids (an image is either train or test)."""
    sample_path = layout.root / layout.sample_submission
    sample = _read_table(sample_path, "competition.sample_submission", layout.encoding)
    require_columns(sample, sample_path, [(layout.id_column, "competition.id_column")])
    test_ids = targets.image_ids(sample, sample_path, layout)
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


def _train_ids_of(layout: CompetitionLayout, targets: TaskTargets) -> pd.Series:
    """The train ids alone, for the test side's clash check (no labels, no images)."""
    path = layout.root / layout.train_csv
    table = _read_table(path, "competition.train_csv", layout.encoding)
    require_columns(table, path, [(layout.id_column, "competition.id_column")])
    return targets.image_ids(table, path, layout, listed=True)


def _inspect_parts(layout: CompetitionLayout, targets: TaskTargets, parts: list[tuple],
                   classes: tuple[str, ...], threads: int, problems: Problems,
                   skipped: list[dict]) -> list[pd.DataFrame]:
    frames = []
    for split, ids, labels, paths, source, train_only in parts:
        frame = _inspect_images(split, ids, paths, layout.bad_train_images == "skip", threads,
                                problems, skipped)
        if frame is None:
            continue
        keep = ids.isin(frame["id"]).to_numpy()
        frame[TARGET_COLUMN] = (
            targets.normalized(labels, layout, classes).to_numpy()[keep]
            if labels is not None else None)
        if labels is not None:
            targets.finish_train(frame, ids, source, layout, classes, problems)
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
             id_column=layout.id_column, multilabel_rule=layout.multilabel_rule,
             options=task_options(layout.task, layout.options)).save(task_path)
    if skipped_path is not None:
        write_csv(pd.DataFrame(skipped, columns=["id", "path", "problem"]), skipped_path)


def _inspect_and_write(train_side: _TrainSide, parts: list[tuple], threads: int,
                       problems: Problems, manifest_path: str | Path, task_path: str | Path,
                       skipped_path: str | Path | None) -> pd.DataFrame:
    """Read every image of ``parts``, then write the manifest, the task spec and the skipped
    train images (all or nothing: a problem stops before anything is written)."""
    layout, skipped = train_side.layout, []
    frames = _inspect_parts(layout, train_side.targets, parts, train_side.classes, threads,
                            problems, skipped)
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
    targets = _check_layout(layout)
    problems = Problems()
    train_side = _validate_train(layout, targets, problems)
    layout = train_side.layout
    test_parts = _validate_test(layout, targets, problems, train_side.table[layout.id_column])
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
    targets = _check_layout(layout)
    problems = Problems()
    train_side = _validate_train(layout, targets, problems)
    layout = train_side.layout
    problems.raise_if_any(f"competition folder {layout.root} failed validation")
    return _inspect_and_write(train_side, train_side.parts, threads, problems, manifest_path,
                              task_path, skipped_path)


def ingest_test(layout: CompetitionLayout, manifest_path: str | Path,
                threads: int = 1) -> pd.DataFrame:
    """Validate the test side (sample submission, test images) and write its manifest. Bad
    test images always stop here: the submission needs a prediction for each."""
    _check_root(layout)
    targets = targets_for(layout.task)
    problems = Problems()
    parts = _validate_test(layout, targets, problems, _train_ids_of(layout, targets))
    problems.raise_if_any(f"competition folder {layout.root} failed validation")
    frames = _inspect_parts(layout, targets, parts, (), threads, problems, [])
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
