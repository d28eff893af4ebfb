"""Segmentation competitions: masks and their run-length encoding, segmentation models and
losses, tiled inference with D4 TTA, and the post-processing fitted on out-of-fold masks."""

TASK = "segmentation"
"""The ``competition.task`` this plug-in serves."""

# Every job that runs this plug-in's code can look its metrics up by name (after TASK: the
# module reads it).
from podium.tasks.segment import metrics as _metrics  # noqa: E402,F401
