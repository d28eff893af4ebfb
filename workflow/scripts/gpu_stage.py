"""Run the task plug-in's entry point that the rule names (``params.entry``: podium.stage) on
this job, pinned to a GPU of its own when the machine has several: train a fold, or predict
the test images with one."""

from podium.glue import StageJob, job_logging, run_entry
from podium.train.devices import default_lock_dir, pin_gpu

with job_logging(snakemake), pin_gpu(default_lock_dir()):
    run_entry(snakemake.params.entry, StageJob.of(snakemake))
