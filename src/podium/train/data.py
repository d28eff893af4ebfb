"""Datasets over packed uint8/uint16 arrays: rows come from a memory map, never decoded again."""

from __future__ import annotations

from pathlib import Path

import albumentations as A
import numpy as np
import torch
from torch.utils.data import Dataset


class PackedImages(Dataset):
    """``(image, label)`` pairs from rows of a packed ``N x H x W x C`` uint8/uint16 array;
    the label is a class index, a float 0/1 row for multilabel, or a float value for
    regression and ordinal targets (-1 when unlabelled)."""

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
        tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if self.labels is None:
            return tensor, -1
        label = self.labels[i]
        if np.ndim(label) or np.issubdtype(np.asarray(label).dtype, np.floating):
            # a multilabel 0/1 row, or a regression/ordinal value: the float targets BCE and
            # MSE expect
            return tensor, torch.as_tensor(label, dtype=torch.float32)
        return tensor, int(label)


def load_packed(array_path: str | Path) -> np.ndarray:
    """Memory-map a packed split read-only: workers share pages instead of copies."""
    return np.load(array_path, mmap_mode="r")


def normalize(batch: torch.Tensor) -> torch.Tensor:
    """uint8 or uint16 batch to float in [-1, 1], done on the device after transfer (4x or 2x
    less to copy than float32)."""
    half_range = 32767.5 if batch.dtype == torch.uint16 else 127.5
    return batch.float().div_(half_range).sub_(1.0)
