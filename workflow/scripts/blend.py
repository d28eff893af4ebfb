"""Blend every model's predictions."""

from podium.ensemble.level2 import run_blend
from podium.ensemble.oof import TrainTruth
from podium.glue import job_logging
from podium.task import TaskSpec

with job_logging(snakemake):
    i, models = snakemake.input, snakemake.params.models
    spec = TaskSpec.load(i.task)
    run_blend(snakemake.wildcards.blend, snakemake.params.settings["method"], spec,
              TrainTruth.load(i.folds, i.manifest, spec),
              dict(zip(models, i.oofs, strict=True)),
              dict(zip(models, i.tests, strict=True)), dict(snakemake.output.items()))
