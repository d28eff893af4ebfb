"""Train one model on one fold, pinned to its own GPU when the machine has several."""

from pathlib import Path

from podium.glue import job_logging
from podium.task import TaskSpec
from podium.train.devices import default_lock_dir, pin_gpu
from podium.train.fit import FoldOutputs, PseudoLabels, TrainSettings, train_fold

with job_logging(snakemake), pin_gpu(default_lock_dir()):
    i, o = snakemake.input, snakemake.output
    pseudo = i.get("pseudo")  # round-2 models only
    train_fold(
        TrainSettings.from_config(snakemake.params.settings), TaskSpec.load(i.task),
        int(snakemake.wildcards.fold), i.train_array, i.train_index, i.folds, i.manifest,
        FoldOutputs(*(Path(p) for p in (o.weights, o.oof, o.history, o.metrics))),
        threads=snakemake.threads, resume_dir=snakemake.params.resume_dir,
        name=snakemake.wildcards.model, weights_csv=i.get("weights"),
        pseudo=PseudoLabels(i.test_array, i.test_index, pseudo) if pseudo else None,
    )
