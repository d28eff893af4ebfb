"""Find duplicate images: clusters, pairs, train/test leaks, label conflicts, a montage."""

import pandas as pd

from podium.data.dedup import (
    excluded_train_ids,
    external_duplicates,
    find_duplicates,
    label_conflicts,
    leaked_test_images,
)
from podium.data.montage import plot_pair_montage
from podium.data.neardup import NearDuplicateSettings
from podium.glue import job_logging
from podium.tables import write_csv
from podium.task import TaskSpec

with job_logging(snakemake) as log:
    settings = dict(snakemake.params.settings)
    drop = settings.pop("drop")
    near = NearDuplicateSettings(**settings) if settings.pop("near") else None
    manifest = pd.read_parquet(snakemake.input.manifest)
    target = TaskSpec.load(snakemake.input.task).target
    clusters, pairs = find_duplicates(manifest, near, threads=snakemake.threads)
    leaks = leaked_test_images(clusters, manifest, target)
    conflicts = label_conflicts(clusters, manifest, target)
    log.info("%d test images duplicate train images; %d train images in clusters with "
             "conflicting labels", len(leaks), len(conflicts))
    write_csv(clusters, snakemake.output.clusters)
    write_csv(pairs, snakemake.output.pairs)
    write_csv(leaks, snakemake.output.leaks)
    write_csv(conflicts, snakemake.output.conflicts)
    excluded = pd.concat([excluded_train_ids(clusters, pairs, conflicts, drop),
                          external_duplicates(clusters, manifest)])
    write_csv(excluded.drop_duplicates("id"), snakemake.output.excluded)
    plot_pair_montage(pairs, manifest, snakemake.output.montage)
