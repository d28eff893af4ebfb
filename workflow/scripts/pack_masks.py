"""Decode the train masks and pack them row for row with the packed train images."""

import pandas as pd

from podium.glue import job_logging
from podium.task import TARGET_COLUMN, TaskSpec
from podium.tasks.segment.masks import pack_masks

with job_logging(snakemake):
    spec = TaskSpec.load(snakemake.input.task)
    pack_masks(pd.read_parquet(snakemake.input.manifest), pd.read_parquet(snakemake.input.index),
               TARGET_COLUMN, spec.mask_order, snakemake.params.size, snakemake.output.masks,
               n_classes=spec.n_classes, rle_format=spec.rle_format)
