"""Predict the test images with one trained fold, pinned to its own GPU like training."""

from podium.glue import job_logging
from podium.task import TaskSpec
from podium.train.devices import default_lock_dir, pin_gpu
from podium.train.fit import TrainSettings
from podium.train.predict import predict_test_fold

with job_logging(snakemake), pin_gpu(default_lock_dir()):
    i = snakemake.input
    predict_test_fold(
        TrainSettings.from_config(snakemake.params.settings), TaskSpec.load(i.task), i.weights,
        i.test_array, i.test_index, snakemake.output.test, threads=snakemake.threads,
        name=snakemake.wildcards.model,
    )
