"""Assign leak-free folds to the train images that dedup keeps."""

import pandas as pd

from podium.data.folds import assign_folds
from podium.glue import job_logging
from podium.tables import write_csv
from podium.task import TaskSpec

with job_logging(snakemake):
    spec = TaskSpec.load(snakemake.input.task)
    manifest = pd.read_parquet(snakemake.input.manifest)
    train_labels = manifest.loc[manifest["split"] == "train", spec.target]
    folds = assign_folds(
        manifest, pd.read_csv(snakemake.input.clusters, dtype={"id": str}),
        set(pd.read_csv(snakemake.input.excluded, dtype={"id": str})["id"]),
        spec.encode(train_labels), snakemake.params.folds["n_folds"],
        snakemake.params.folds["seed"],
    )
    write_csv(folds, snakemake.output.folds)
