"""Write submission.csv from the leaderboard's best entry."""

import pandas as pd

from podium.glue import job_logging
from podium.submit.check import check_submission
from podium.submit.submission import apply_leak_labels, format_submission, read_sample
from podium.tables import write_csv
from podium.task import TaskSpec

with job_logging(snakemake) as log:
    best = pd.read_csv(snakemake.input.leaderboard)["name"].iloc[0]
    tests = dict(zip(snakemake.params.names, snakemake.input.tests, strict=True))
    spec = TaskSpec.load(snakemake.input.task)
    predictions = pd.read_parquet(tests[best])
    if snakemake.params.leak_labels:
        leaks = pd.read_csv(snakemake.input.leaks, dtype={"test_id": str, "train_label": str})
        predictions = apply_leak_labels(predictions, leaks, spec)
        trusted = int((~leaks["label_conflict"].astype(bool)).sum())
        log.info("copied train labels onto %d leaked test images", trusted)
    sample = read_sample(snakemake.input.sample, snakemake.params.encoding)
    values = snakemake.params.values
    submission = format_submission(sample, predictions, spec, values)
    check_submission(submission, sample, spec, values)
    write_csv(submission, snakemake.output.submission)
    log.info("submission from %s: %d rows", best, len(submission))
