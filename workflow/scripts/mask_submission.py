"""Write the best entry's test masks, at each image's size (or submission.mask_size),
run-length encoded in the competition's format; every string is checked before writing."""

import numpy as np
import pandas as pd

from podium.glue import job_logging
from podium.submit.submission import read_sample
from podium.tables import write_csv
from podium.task import TaskSpec
from podium.tasks.segment.submission import (
    check_mask_submission,
    encode_test_masks,
    instance_submission,
    segmentation_submission,
)

with job_logging(snakemake) as log:
    i = snakemake.input
    spec = TaskSpec.load(i.task)
    mask_size = snakemake.params.mask_size
    best = pd.read_csv(i.leaderboard)["name"].iloc[0]
    maps = np.load(i.tests[list(snakemake.params.names).index(best)])
    test_ids = pd.read_parquet(i.test_index)["id"]
    sizes = pd.read_parquet(i.manifest)
    sample = read_sample(i.sample, snakemake.params.encoding)
    if spec.instances:  # a row per instance; probability maps split by the default watershed
        submission = instance_submission(maps, test_ids, sizes, sample, spec, mask_size)
        described = (f"{int((submission[spec.target] != '').sum())} instances in "
                     f"{len(test_ids)} test images")
    else:
        rle_of = encode_test_masks(maps, test_ids, sizes, spec.mask_order, spec.rle_format,
                                   mask_size)
        submission = segmentation_submission(sample, spec, rle_of, i.sample)
        described = (f"{sum(any(v) for v in rle_of.values())} of {len(rle_of)} test images "
                     "with a mask")
    check_mask_submission(submission, spec, sizes, mask_size, snakemake.output.submission)
    write_csv(submission, snakemake.output.submission)
    log.info("submission from %s: %s, %s RLE%s", best, described, spec.rle_format,
             f" at {mask_size[0]}x{mask_size[1]}" if mask_size else "")
