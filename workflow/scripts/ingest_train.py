"""Validate the train side of the competition folder; write its manifest and the task spec."""

from podium.data.ingest import CompetitionLayout, ingest_train
from podium.glue import job_logging
from podium.tasks import plugins  # noqa: F401  (registers every task's targets)

with job_logging(snakemake):
    ingest_train(
        CompetitionLayout.from_config(snakemake.params.competition),
        snakemake.output.manifest, snakemake.output.task, threads=snakemake.threads,
        skipped_path=snakemake.output.skipped,
    )
