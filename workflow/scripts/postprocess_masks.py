"""Post-process an entry's masks: threshold, minimum area and an empty-mask classifier fitted
fold by fold on OOF (honest CV), then on all OOF for the test masks."""

import numpy as np
import pandas as pd

from podium.errors import PodiumInputError
from podium.glue import job_logging
from podium.segment.entries import SegmentTruth, postprocess_entry, write_entry

with job_logging(snakemake):
    i, w = snakemake.input, snakemake.wildcards
    settings = snakemake.params.settings
    if settings["method"] != "masks":
        raise PodiumInputError(
            f"config key postprocess.{w.post}.method: segmentation post-processing is "
            f"'masks' (threshold, minimum area, empty-mask classifier), not "
            f"{settings['method']!r}.")
    truth = SegmentTruth.load(i.folds, i.train_index, i.masks)
    oof_masks, test_masks, details = postprocess_entry(
        truth, np.load(i.oof), np.load(i.test), settings.get("params") or {})
    write_entry(f"{w.entry}+{w.post}", "postprocess", truth, oof_masks, test_masks,
                pd.read_parquet(i.test_index)["id"].to_numpy(), snakemake.output,
                details=details)
