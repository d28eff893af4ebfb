"""Blend the segmentation models: the pixel-wise mean of their probability maps (only `mean`
blends apply to segmentation; common.smk leaves the others out)."""

import numpy as np
import pandas as pd

from podium.glue import job_logging
from podium.tasks.segment.entries import SegmentTruth, mean_blend, write_entry

with job_logging(snakemake):
    i, name = snakemake.input, snakemake.wildcards.blend
    oof, test = mean_blend([np.load(p) for p in i.oofs], [np.load(p) for p in i.tests])
    write_entry(name, "blend", SegmentTruth.load(i.folds, i.train_index, i.masks,
                                   getattr(i, "instances", None)), oof, test,
                pd.read_parquet(i.test_index)["id"].to_numpy(), snakemake.output,
                details={"models": len(i.oofs)})
