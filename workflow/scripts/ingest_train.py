"""Validate the train side of the competition folder; write its manifest and the task spec."""

from importlib import import_module

from podium.data.ingest import CompetitionLayout, ingest_train
from podium.glue import job_logging

with job_logging(snakemake):
    import_module(snakemake.params.entry)  # registers the task's targets (its stage names them)
    ingest_train(
        CompetitionLayout.from_config(snakemake.params.competition),
        snakemake.output.manifest, snakemake.output.task, threads=snakemake.threads,
        skipped_path=snakemake.output.skipped,
    )
