"""Train one model on one fold with its task's trainer (the plug-in's entry point the rule
names), pinned to its own GPU when the machine has several."""

from podium.glue import job_logging
from podium.train.devices import default_lock_dir, pin_gpu
from podium.train.stage import ModelJob, run_entry

with job_logging(snakemake), pin_gpu(default_lock_dir()):
    run_entry(snakemake.params.entry, ModelJob.of(snakemake))
