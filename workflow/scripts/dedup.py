"""Duplicates across the whole competition: test images join the train side's clusters (which
stay as they are), leaks of train labels into test, and a montage of the pairs."""

import pandas as pd

from podium.data.dedup import (
    attach_test_images,
    find_duplicates,
    leaked_test_images,
    pairs_with_test,
)
from podium.data.montage import plot_pair_montage
from podium.data.neardup import NearDuplicateSettings
from podium.glue import job_logging
from podium.tables import write_csv
from podium.task import TARGET_COLUMN

with job_logging(snakemake) as log:
    i, o = snakemake.input, snakemake.output
    settings = dict(snakemake.params.settings)
    settings.pop("drop")
    near = NearDuplicateSettings(**settings) if settings.pop("near") else None
    manifest = pd.read_parquet(i.manifest)
    train_clusters = pd.read_csv(i.train_clusters, dtype={"id": str})
    train_pairs = pd.read_csv(i.train_pairs, dtype={"id_a": str, "id_b": str})
    _, all_pairs = find_duplicates(manifest, near, threads=snakemake.threads)
    pairs = pairs_with_test(manifest, all_pairs, train_pairs)
    clusters = attach_test_images(manifest, train_clusters, pairs)
    leaks = leaked_test_images(clusters, manifest, TARGET_COLUMN)
    log.info("%d test images duplicate train images", len(leaks))
    write_csv(clusters, o.clusters)
    write_csv(pairs, o.pairs)
    write_csv(leaks, o.leaks)
    plot_pair_montage(pairs, manifest, o.montage)
