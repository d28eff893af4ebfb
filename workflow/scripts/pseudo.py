"""Pick the confident test predictions of the fold's round-1 models as pseudo labels."""

import pandas as pd

from podium.ensemble.pseudo import select_pseudo_labels
from podium.glue import job_logging
from podium.tables import write_csv
from podium.task import TaskSpec

with job_logging(snakemake):
    chosen = select_pseudo_labels(
        TaskSpec.load(snakemake.input.task),
        [pd.read_parquet(p) for p in snakemake.input.tests],
        snakemake.params.settings["threshold"],
    )
    write_csv(chosen, snakemake.output.pseudo)
