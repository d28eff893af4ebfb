"""Fit a post-processor on one entry's OOF predictions and apply it to its test ones."""

from podium.ensemble.level2 import run_postprocess
from podium.ensemble.oof import TrainTruth
from podium.glue import job_logging
from podium.task import TaskSpec

with job_logging(snakemake):
    i, w, settings = snakemake.input, snakemake.wildcards, snakemake.params.settings
    spec = TaskSpec.load(i.task)
    run_postprocess(f"{w.entry}+{w.post}", w.entry, settings["method"],
                    settings.get("params") or {}, spec, TrainTruth.load(i.folds, i.manifest, spec),
                    i.oof, i.test, dict(snakemake.output.items()))
