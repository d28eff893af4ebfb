"""Train one segmentation model on one fold, pinned to its own GPU when there are several."""

from pathlib import Path

from podium.glue import job_logging
from podium.task import TaskSpec
from podium.tasks.segment.fit import SegmentFoldOutputs, SegmentSettings, train_segment_fold
from podium.train.devices import default_lock_dir, pin_gpu

with job_logging(snakemake), pin_gpu(default_lock_dir()):
    i, o = snakemake.input, snakemake.output
    train_segment_fold(
        SegmentSettings.from_config(snakemake.params.settings, name=snakemake.wildcards.model),
        int(snakemake.wildcards.fold),
        i.train_array, i.train_index, i.masks, i.folds,
        SegmentFoldOutputs(*(Path(p) for p in (o.weights, o.oof_probs, o.oof_index, o.history,
                                               o.metrics))),
        threads=snakemake.threads, resume_dir=snakemake.params.resume_dir,
        name=snakemake.wildcards.model, n_classes=TaskSpec.load(i.task).n_classes,
    )
