"""Assign leak-free folds to the train images that dedup keeps."""

import pandas as pd

from podium.data.folds import assign_folds
from podium.glue import job_logging
from podium.tables import write_csv
from podium.task import TARGET_COLUMN, TaskSpec
from podium.tasks.segment.masks import stratification_labels

with job_logging(snakemake):
    spec = TaskSpec.load(snakemake.input.task)
    manifest = pd.read_parquet(snakemake.input.manifest)
    train_labels = manifest.loc[manifest["split"] == "train", TARGET_COLUMN]
    # segmentation stratifies on empty masks and mask-area tertiles
    labels = (stratification_labels(train_labels, spec.n_classes) if spec.is_segmentation
              else spec.encode(train_labels))
    folds = assign_folds(
        manifest, pd.read_csv(snakemake.input.clusters, dtype={"id": str}),
        set(pd.read_csv(snakemake.input.excluded, dtype={"id": str})["id"]),
        labels, snakemake.params.folds["n_folds"],
        snakemake.params.folds["seed"],
        # classes with fewer images than folds are logged (not for masks or values)
        classes=None if spec.is_segmentation or spec.task == "regression" else spec.classes,
    )
    write_csv(folds, snakemake.output.folds)
