"""Post-process an entry's masks: threshold, minimum area and an empty-mask classifier fitted
fold by fold on OOF (honest CV), then on all OOF for the test masks (only `masks`
post-processors apply to segmentation; common.smk leaves the others out)."""

import numpy as np
import pandas as pd

from podium.glue import job_logging
from podium.segment.entries import SegmentTruth, postprocess_entry, write_entry

with job_logging(snakemake):
    i, w = snakemake.input, snakemake.wildcards
    truth = SegmentTruth.load(i.folds, i.train_index, i.masks)
    oof_masks, test_masks, details = postprocess_entry(
        truth, np.load(i.oof), np.load(i.test), snakemake.params.settings.get("params") or {})
    write_entry(f"{w.entry}+{w.post}", "postprocess", truth, oof_masks, test_masks,
                pd.read_parquet(i.test_index)["id"].to_numpy(), snakemake.output,
                details=details)
