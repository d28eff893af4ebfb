"""Fit a level-2 stacker fold by fold on every model's OOF predictions."""

from podium.ensemble.level2 import run_stacker
from podium.ensemble.oof import TrainTruth
from podium.glue import job_logging
from podium.task import TaskSpec

with job_logging(snakemake):
    i, models, settings = snakemake.input, snakemake.params.models, snakemake.params.settings
    spec = TaskSpec.load(i.task)
    run_stacker(snakemake.wildcards.stacker, settings["library"], settings.get("params", {}),
                snakemake.params.seed, snakemake.threads, spec,
                TrainTruth.load(i.folds, i.manifest, spec),
                dict(zip(models, i.oofs, strict=True)),
                dict(zip(models, i.tests, strict=True)), dict(snakemake.output.items()),
                i.manifest if settings.get("meta_features") else None)
