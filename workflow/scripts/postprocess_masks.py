"""Post-process an entry's masks: threshold, minimum area and an empty-mask classifier (method
masks), or watershed instances (method instances), fitted fold by fold on OOF (honest CV),
then on all OOF for the test masks (common.smk leaves other methods out of segmentation)."""

import numpy as np
import pandas as pd

from podium.glue import job_logging
from podium.tasks.segment.entries import (
    SegmentTruth,
    instance_entry,
    postprocess_entry,
    write_entry,
)

with job_logging(snakemake):
    i, w = snakemake.input, snakemake.wildcards
    truth = SegmentTruth.load(i.folds, i.train_index, i.masks, getattr(i, "instances", None))
    settings = snakemake.params.settings
    fit = instance_entry if settings["method"] == "instances" else postprocess_entry
    oof_masks, test_masks, details = fit(truth, np.load(i.oof), np.load(i.test),
                                         settings.get("params") or {})
    write_entry(f"{w.entry}+{w.post}", "postprocess", truth, oof_masks, test_masks,
                pd.read_parquet(i.test_index)["id"].to_numpy(), snakemake.output,
                details=details)
