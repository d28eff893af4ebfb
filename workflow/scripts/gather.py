"""Gather a model's folds into its leaderboard entry (OOF for every train row, test
averaged over the folds, cv.json) with its task's gatherer (the entry point the rule names)."""

from podium.glue import job_logging
from podium.train.stage import ModelJob, run_entry

with job_logging(snakemake):
    run_entry(snakemake.params.entry, ModelJob.of(snakemake))
