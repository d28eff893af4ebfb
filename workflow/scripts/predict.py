"""Predict the test images with one trained fold and its task's predictor (the plug-in's
entry point the rule names), pinned to its own GPU like training."""

from podium.glue import job_logging
from podium.train.devices import default_lock_dir, pin_gpu
from podium.train.stage import ModelJob, run_entry

with job_logging(snakemake), pin_gpu(default_lock_dir()):
    run_entry(snakemake.params.entry, ModelJob.of(snakemake))
