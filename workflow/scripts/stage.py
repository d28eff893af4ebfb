"""Run the task plug-in's entry point that the rule names (``params.entry``, from the task's
stage: podium.stage) on this job: train a fold, predict the test images, gather, blend,
stack, post-process, write, score or plot."""

from podium.glue import StageJob, job_logging, run_entry

with job_logging(snakemake):
    run_entry(snakemake.params.entry, StageJob.of(snakemake))
