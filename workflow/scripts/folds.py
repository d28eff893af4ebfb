"""Assign leak-free folds to the train images that dedup keeps."""

from importlib import import_module

import pandas as pd

from podium.data.folds import assign_folds
from podium.data.targets import targets_for
from podium.glue import job_logging
from podium.tables import write_csv
from podium.task import TARGET_COLUMN, TaskSpec

with job_logging(snakemake):
    import_module(snakemake.params.entry)  # registers the task's targets (its stage names them)
    spec = TaskSpec.load(snakemake.input.task)
    manifest = pd.read_parquet(snakemake.input.manifest)
    train_labels = manifest.loc[manifest["split"] == "train", TARGET_COLUMN]
    labels, classes = targets_for(spec.task).stratification(train_labels, spec)
    folds = assign_folds(
        manifest, pd.read_csv(snakemake.input.clusters, dtype={"id": str}),
        set(pd.read_csv(snakemake.input.excluded, dtype={"id": str})["id"]),
        labels, snakemake.params.folds["n_folds"],
        snakemake.params.folds["seed"],
        classes=classes,  # those with fewer images than folds are logged
    )
    write_csv(folds, snakemake.output.folds)
