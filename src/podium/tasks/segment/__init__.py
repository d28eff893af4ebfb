"""Segmentation competitions: masks and their run-length encoding, segmentation models and
losses, tiled inference with D4 TTA, and the post-processing fitted on out-of-fold masks."""

TASK = "segmentation"
"""The ``competition.task`` this plug-in serves."""
