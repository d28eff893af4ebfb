"""Join the train and test manifests into the one manifest every whole-competition step reads."""

from podium.data.ingest import merge_manifests
from podium.glue import job_logging

with job_logging(snakemake):
    merge_manifests(snakemake.input.train, snakemake.input.test, snakemake.output.manifest)
