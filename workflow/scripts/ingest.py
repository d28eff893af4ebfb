"""Validate the competition folder and write the manifest and task spec."""

from podium.data.ingest import CompetitionLayout, ingest_competition
from podium.glue import job_logging

with job_logging(snakemake):
    ingest_competition(
        CompetitionLayout.from_config(snakemake.params.competition),
        snakemake.output.manifest, snakemake.output.task, threads=snakemake.threads,
        skipped_path=snakemake.output.skipped,
    )
