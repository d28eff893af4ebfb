"""Validate the test side of the competition folder and write its manifest."""

from podium.data.ingest import CompetitionLayout, ingest_test
from podium.glue import job_logging
from podium.tasks import plugins  # noqa: F401  (registers every task's targets)

with job_logging(snakemake):
    ingest_test(CompetitionLayout.from_config(snakemake.params.competition),
                snakemake.output.manifest, threads=snakemake.threads)
