"""Validate the competition folder and write the manifest and task spec."""

from pathlib import Path

from podium.data.ingest import CompetitionLayout, ingest_competition
from podium.glue import job_logging

with job_logging(snakemake):
    layout = snakemake.params.layout
    classes = layout.get("classes")
    ingest_competition(
        CompetitionLayout(**{**layout, "root": Path(layout["root"]),
                             "classes": tuple(classes) if classes is not None else None}),
        snakemake.output.manifest, snakemake.output.task, threads=snakemake.threads,
        skipped_path=snakemake.output.skipped,
    )
