"""Blend the segmentation models: the pixel-wise mean of their probability maps."""

import numpy as np
import pandas as pd

from podium.errors import PodiumInputError
from podium.glue import job_logging
from podium.segment.entries import SegmentTruth, mean_blend, write_entry

with job_logging(snakemake):
    i, name = snakemake.input, snakemake.wildcards.blend
    method = snakemake.params.settings.get("method")
    if method != "mean":
        raise PodiumInputError(
            f"config key ensemble.blends.{name}.method: segmentation blends probability maps "
            f"by their mean; {method!r} is for classification. Use method: mean.")
    oof, test = mean_blend([np.load(p) for p in i.oofs], [np.load(p) for p in i.tests])
    write_entry(name, "blend", SegmentTruth.load(i.folds, i.train_index, i.masks), oof, test,
                pd.read_parquet(i.test_index)["id"].to_numpy(), snakemake.output,
                details={"models": len(i.oofs)})
