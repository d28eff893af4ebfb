"""Write submission.csv from the leaderboard's best entry."""

import pandas as pd

from podium.glue import job_logging
from podium.submit.submission import format_submission, read_sample
from podium.tables import write_csv
from podium.task import TaskSpec

with job_logging(snakemake) as log:
    best = pd.read_csv(snakemake.input.leaderboard)["name"].iloc[0]
    tests = dict(zip(snakemake.params.names, snakemake.input.tests, strict=True))
    submission = format_submission(read_sample(snakemake.params.sample),
                                   pd.read_parquet(tests[best]),
                                   TaskSpec.load(snakemake.input.task))
    write_csv(submission, snakemake.output.submission)
    log.info("submission from %s: %d rows", best, len(submission))
