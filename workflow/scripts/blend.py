"""Blend every model's predictions."""

from podium.ensemble.level2 import run_blend
from podium.ensemble.oof import TrainTruth
from podium.glue import job_logging
from podium.task import TaskSpec

with job_logging(snakemake):
    i = snakemake.input
    spec = TaskSpec.load(i.task)
    run_blend(snakemake.wildcards.blend, snakemake.params.settings["method"], spec,
              TrainTruth.load(i.folds, i.manifest, spec),
              dict(zip(snakemake.params.models, i.oofs)),
              dict(zip(snakemake.params.models, i.tests)), dict(snakemake.output.items()))
