"""Gather a segmentation model's folds: OOF maps for every validated image, test maps averaged."""

import pandas as pd

from podium.glue import job_logging
from podium.tasks.segment.entries import SegmentTruth, gather_folds, write_entry

with job_logging(snakemake):
    i = snakemake.input
    truth = SegmentTruth.load(i.folds, i.train_index, i.masks,
                         getattr(i, "instances", None))
    oof, test = gather_folds(truth, i.fold_probs, i.fold_indexes, i.fold_tests)
    write_entry(snakemake.wildcards.model, "model", truth, oof, test,
                pd.read_parquet(i.test_index)["id"].to_numpy(), snakemake.output)
