"""Write the best entry's test masks, at each image's size, run-length encoded."""

import numpy as np
import pandas as pd

from podium.glue import job_logging
from podium.segment.submission import (
    encode_test_masks,
    instance_submission,
    segmentation_submission,
)
from podium.submit.submission import read_sample
from podium.tables import write_csv
from podium.task import TaskSpec

with job_logging(snakemake) as log:
    i = snakemake.input
    spec = TaskSpec.load(i.task)
    best = pd.read_csv(i.leaderboard)["name"].iloc[0]
    maps = np.load(i.tests[list(snakemake.params.names).index(best)])
    test_ids = pd.read_parquet(i.test_index)["id"]
    sizes = pd.read_parquet(i.manifest)
    sample = read_sample(i.sample, snakemake.params.encoding)
    if spec.instances:  # a row per instance; probability maps split by the default watershed
        submission = instance_submission(maps, test_ids, sizes, sample, spec)
        write_csv(submission, snakemake.output.submission)
        log.info("submission from %s: %d instances in %d test images", best,
                 int((submission[spec.target] != "").sum()), len(test_ids))
    else:
        rle_of = encode_test_masks(maps, test_ids, sizes, spec.mask_order)
        write_csv(segmentation_submission(sample, spec, rle_of, i.sample),
                  snakemake.output.submission)
        log.info("submission from %s: %d of %d test images with a mask", best,
                 sum(any(v) for v in rle_of.values()), len(rle_of))
