"""Pack each train image's instances as int32 labels, row for row with the packed images."""

import numpy as np
import pandas as pd

from podium.glue import job_logging
from podium.task import TARGET_COLUMN, TaskSpec
from podium.tasks.segment.instances import pack_instance_labels

with job_logging(snakemake) as log:
    spec = TaskSpec.load(snakemake.input.task)
    packed = pack_instance_labels(
        pd.read_parquet(snakemake.input.manifest), pd.read_parquet(snakemake.input.index),
        TARGET_COLUMN, spec.mask_order, snakemake.params.size, snakemake.output.instances,
        rle_format=spec.rle_format)
    log.info("packed the instances of %d train images (%d objects)", len(packed),
             sum(len(np.unique(image)) - 1 for image in packed))
