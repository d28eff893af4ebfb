"""Batches from packed uint8/uint16 arrays: rows come from a memory map, never decoded again.

Images stay NHWC (the packed layout) all the way to the device, where one ``permute`` makes
them NCHW with channels_last strides at no cost. Without augmentation a batch is one fancy
index into the array in the main process (:class:`BatchLoader`): on a GPU that beats a
DataLoader whose worker processes start again every epoch and pass images one by one. Per-image
augmentation needs the CPU, so augmenting epochs go through :class:`PackedImages` and a
DataLoader with workers."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch.utils.data import ConcatDataset, Dataset, get_worker_info

if TYPE_CHECKING:
    import albumentations as A


class PackedImages(Dataset):
    """``(image, label)`` pairs from rows of a packed ``N x H x W x C`` uint8/uint16 array,
    each image ``H x W x C``, augmented one at a time (DataLoader workers run this). The
    label is a class index, a float 0/1 row for multilabel, or a float value for regression
    and ordinal targets (-1 when unlabelled)."""

    def __init__(
        self, array: np.ndarray, rows: np.ndarray, labels: np.ndarray | None = None,
        augment: A.Compose | None = None,
    ) -> None:
        self.array = array
        self.rows = np.asarray(rows)
        self.labels = labels
        self.augment = augment

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int | torch.Tensor]:
        image = np.array(self.array[self.rows[i]])  # a writable copy of the mapped row
        if self.augment is not None:
            image = self.augment(image=image)["image"]
            if image.ndim == 2:
                image = image[:, :, None]
        tensor = torch.from_numpy(np.ascontiguousarray(image))  # HWC, like the array
        if self.labels is None:
            return tensor, -1
        label = self.labels[i]
        if np.ndim(label) or np.issubdtype(np.asarray(label).dtype, np.floating):
            # a multilabel 0/1 row, or a regression/ordinal value: the float targets BCE and
            # MSE expect
            return tensor, torch.as_tensor(label, dtype=torch.float32)
        return tensor, int(label)


def normalize(batch: torch.Tensor) -> torch.Tensor:
    """uint8 or uint16 batch to float in [-1, 1], done on the device after transfer (4x or 2x
    less to copy than float32)."""
    half_range = 32767.5 if batch.dtype == torch.uint16 else 127.5
    return batch.float().div_(half_range).sub_(1.0)


def fold_rows(train_index: str | Path, folds_csv: str | Path,
              fold: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The packed train index with each image's fold, and the index positions fold ``fold``
    trains on and validates. Fold -1 is train-only; images missing from folds.csv (left out
    by dedup.drop) are neither trained nor validated."""
    index = pd.read_parquet(train_index, columns=["id", "row"])
    index["id"] = index["id"].astype(str)
    folds = pd.read_csv(folds_csv, dtype={"id": str}, usecols=["id", "fold"])
    index = index.merge(folds, on="id", how="left", validate="one_to_one")
    in_folds = index["fold"].notna().to_numpy()
    is_valid = (index["fold"] == fold).to_numpy()
    return index, np.flatnonzero(in_folds & ~is_valid), np.flatnonzero(is_valid)


def label_tensor(labels: np.ndarray) -> torch.Tensor:
    """Class indexes as int64; multilabel 0/1 rows and regression values as float32 (what
    cross-entropy, BCE and MSE expect; the same types a DataLoader collates)."""
    labels = np.asarray(labels)
    if labels.ndim > 1 or np.issubdtype(labels.dtype, np.floating):
        return torch.from_numpy(labels.astype(np.float32))
    return torch.from_numpy(labels.astype(np.int64))


class BatchLoader:
    """Whole batches gathered from one or more :class:`PackedImages` (train rows, then
    pseudo-labelled test rows) with one fancy index per array, in the order of ``sampler``
    (a shuffle from ``generator`` when there is none, or ``range`` when ``shuffle`` is off).
    Yields ``(images N x H x W x C, labels)``; labels are -1 for unlabelled parts."""

    def __init__(self, parts: Sequence[PackedImages], batch_size: int, *,
                 sampler: torch.utils.data.Sampler | None = None, shuffle: bool = False,
                 generator: torch.Generator | None = None, drop_last: bool = False,
                 pin_memory: bool = False) -> None:
        self.parts = list(parts)
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts])
        self.batch_size, self.sampler, self.shuffle = batch_size, sampler, shuffle
        self.generator, self.drop_last, self.pin_memory = generator, drop_last, pin_memory
        labelled = [p.labels for p in self.parts if p.labels is not None]
        self.labels = (np.concatenate([np.asarray(v) for v in labelled])
                       if len(labelled) == len(self.parts) else None)

    def __len__(self) -> int:
        n = len(self.sampler) if self.sampler is not None else int(self.offsets[-1])
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def order(self) -> np.ndarray:
        n = int(self.offsets[-1])
        if self.sampler is not None:
            return np.fromiter(iter(self.sampler), dtype=np.int64)
        if self.shuffle:
            return torch.randperm(n, generator=self.generator).numpy()
        return np.arange(n)

    def take(self, index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """The images and labels of dataset positions ``index``, in that order."""
        if len(self.parts) == 1:
            part = self.parts[0]
            images = part.array[part.rows[index]]
        else:
            which = np.searchsorted(self.offsets, index, side="right") - 1
            first = self.parts[0].array
            images = np.empty((len(index), *first.shape[1:]), dtype=first.dtype)
            for k, part in enumerate(self.parts):
                mask = which == k
                if mask.any():
                    images[mask] = part.array[part.rows[index[mask] - self.offsets[k]]]
        labels = (label_tensor(self.labels[index]) if self.labels is not None
                  else torch.full((len(index),), -1, dtype=torch.int64))
        return torch.from_numpy(images), labels

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.order()
        for b in range(len(self)):
            images, labels = self.take(order[b * self.batch_size:(b + 1) * self.batch_size])
            if self.pin_memory:  # page-locked, so the copy to the card runs asynchronously
                images, labels = images.pin_memory(), labels.pin_memory()
            yield images, labels


def reseed_worker_augmentation(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: each worker gets a copy of the augmentation pipeline
    with the main process's random state, so without this every worker would replay one
    stream. Seeds come from the loader's per-worker seeds, drawn from its generator, which
    training reseeds every epoch: runs stay reproducible."""
    info = get_worker_info()
    if info is None:
        return
    dataset = info.dataset
    parts = dataset.datasets if isinstance(dataset, ConcatDataset) else [dataset]
    for part in parts:
        augment = getattr(part, "augment", None)
        if augment is not None:
            augment.set_random_seed(info.seed % 2**32)
