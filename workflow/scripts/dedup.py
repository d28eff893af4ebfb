"""Find duplicate images and write clusters.csv and pairs.csv."""

import pandas as pd

from podium.data.dedup import exact_duplicates
from podium.glue import job_logging
from podium.tables import write_csv

with job_logging(snakemake):
    clusters, pairs = exact_duplicates(pd.read_parquet(snakemake.input.manifest))
    write_csv(clusters, snakemake.output.clusters)
    write_csv(pairs, snakemake.output.pairs)
