"""The segment plug-in's own competition keys (the schema's ``x-task: segmentation``), as
ingest read them into the layout and wrote them into data/task.json (``options``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from podium.schema import task_options
from podium.tasks.segment import TASK


class HasOptions(Protocol):
    """A CompetitionLayout (at ingest) or a TaskSpec (every later stage)."""

    @property
    def options(self) -> Any: ...


@dataclass(frozen=True)
class SegmentOptions:
    """How a segmentation competition writes its masks and rows: mask images per train id
    (``masks/{id}.png``), a train.csv row per object (DSB 2018), rows per (image, class)
    named by a column or after the image id (``<id>_<class>``), and the RLE pixel order and
    format (podium.tasks.segment.rle)."""

    train_masks: str | None
    instances: bool
    class_column: str | None
    class_separator: str | None
    mask_order: str
    rle_format: str

    @classmethod
    def of(cls, holder: HasOptions) -> SegmentOptions:
        """The keys ``holder`` sets, the schema's defaults for the rest."""
        return cls(**task_options(TASK, holder.options))

    @property
    def codec(self) -> tuple[str, str]:
        """``(mask_order, rle_format)``: what rle_encode and rle_decode take."""
        return self.mask_order, self.rle_format
