"""Fit a level-2 stacker fold by fold on every model's OOF predictions."""

from podium.ensemble.level2 import run_stacker
from podium.ensemble.oof import TrainTruth
from podium.glue import job_logging
from podium.task import TaskSpec

with job_logging(snakemake):
    i, settings = snakemake.input, snakemake.params.settings
    spec = TaskSpec.load(i.task)
    run_stacker(snakemake.wildcards.stacker, settings["library"], settings.get("params", {}),
                snakemake.params.seed, snakemake.threads, spec,
                TrainTruth.load(i.folds, i.manifest, spec),
                dict(zip(snakemake.params.models, i.oofs)),
                dict(zip(snakemake.params.models, i.tests)), dict(snakemake.output.items()))
