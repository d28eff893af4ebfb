"""Predict the test images' masks with one trained fold (tiles and D4 views as configured)."""

from podium.glue import job_logging
from podium.tasks.segment.fit import SegmentSettings, predict_segment_test
from podium.train.devices import default_lock_dir, pin_gpu

with job_logging(snakemake), pin_gpu(default_lock_dir()):
    i, o, name = snakemake.input, snakemake.output, snakemake.wildcards.model
    predict_segment_test(SegmentSettings.from_config(snakemake.params.settings, name=name),
                         i.weights, i.test_array, i.test_index, o.probs, o.index,
                         threads=snakemake.threads, name=name)
