"""Duplicates among train images: the clusters folds keep together, label conflicts and the
train images the drop policy leaves out. Reads no test file."""

import pandas as pd

from podium.data.dedup import (
    excluded_train_ids,
    external_duplicates,
    find_duplicates,
    label_conflicts,
)
from podium.data.neardup import NearDuplicateSettings
from podium.glue import job_logging
from podium.tables import write_csv
from podium.task import TARGET_COLUMN

with job_logging(snakemake) as log:
    settings = dict(snakemake.params.settings)
    drop = settings.pop("drop")
    near = NearDuplicateSettings(**settings) if settings.pop("near") else None
    manifest = pd.read_parquet(snakemake.input.manifest)
    clusters, pairs = find_duplicates(manifest, near, threads=snakemake.threads)
    conflicts = label_conflicts(clusters, manifest, TARGET_COLUMN)
    log.info("%d train images in clusters with conflicting labels", len(conflicts))
    write_csv(clusters, snakemake.output.clusters)
    write_csv(pairs, snakemake.output.pairs)
    write_csv(conflicts, snakemake.output.conflicts)
    excluded = pd.concat([excluded_train_ids(clusters, pairs, conflicts, drop),
                          external_duplicates(clusters, manifest)])
    write_csv(excluded.drop_duplicates("id"), snakemake.output.excluded)
