"""Blend every model's predictions."""

from podium.ensemble.level2 import run_blend
from podium.ensemble.oof import TrainTruth
from podium.glue import job_logging
from podium.task import TaskSpec

with job_logging(snakemake):
    i, models = snakemake.input, snakemake.params.models
    spec = TaskSpec.load(i.task)
    settings = snakemake.params.settings
    run_blend(snakemake.wildcards.blend, settings["method"], settings.get("params") or {}, spec,
              TrainTruth.load(i.folds, i.manifest, spec),
              dict(zip(models, i.oofs, strict=True)),
              dict(zip(models, i.tests, strict=True)), dict(snakemake.output.items()))
