"""Assign leak-free folds to the train images that dedup.drop keeps."""

import pandas as pd

from podium.data.folds import combine_groups, make_folds
from podium.glue import job_logging
from podium.tables import write_csv
from podium.task import TaskSpec

with job_logging(snakemake) as log:
    spec = TaskSpec.load(snakemake.input.task)
    manifest = pd.read_parquet(snakemake.input.manifest)
    excluded = set(pd.read_csv(snakemake.input.excluded, dtype={"id": str})["id"])
    train = manifest[(manifest["split"] == "train") & ~manifest["id"].isin(excluded)]
    log.info("%d train images left out of training by dedup.drop", len(excluded))
    clusters = pd.read_csv(snakemake.input.clusters, dtype={"id": str}).set_index("id")
    labels = [clusters.loc[train["id"], "cluster"].to_numpy()]
    if "group" in train.columns:
        labels.append(train["group"].to_numpy())
    folds = make_folds(train["id"], spec.encode(train[spec.target]), combine_groups(*labels),
                       snakemake.params.folds["n_folds"], snakemake.params.folds["seed"])
    write_csv(folds, snakemake.output.folds)
