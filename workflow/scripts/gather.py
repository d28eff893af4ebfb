"""Gather a model's folds into OOF, test and cv.json."""

from podium.ensemble.gather import gather_model
from podium.ensemble.oof import TrainTruth
from podium.glue import job_logging
from podium.task import TaskSpec

with job_logging(snakemake):
    i, o = snakemake.input, snakemake.output
    spec = TaskSpec.load(i.task)
    gather_model(snakemake.wildcards.model, spec, TrainTruth.load(i.folds, i.manifest, spec),
                 i.fold_oofs, i.fold_tests, o.oof, o.test, o.cv)
