"""Preprocess one split into a packed array."""

import pandas as pd

from podium.glue import job_logging
from podium.preprocess.pack import pack_split
from podium.preprocess.transforms import PreprocessSettings

with job_logging(snakemake):
    pack_split(pd.read_parquet(snakemake.input.manifest), snakemake.wildcards.split,
               PreprocessSettings(**snakemake.params.settings), snakemake.output.array,
               snakemake.output.index, threads=snakemake.threads)
