"""Validate the test side of the competition folder and write its manifest."""

from importlib import import_module

from podium.data.ingest import CompetitionLayout, ingest_test
from podium.glue import job_logging

with job_logging(snakemake):
    import_module(snakemake.params.entry)  # registers the task's targets (its stage names them)
    ingest_test(CompetitionLayout.from_config(snakemake.params.competition),
                snakemake.output.manifest, threads=snakemake.threads)
