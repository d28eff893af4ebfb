"""The classify plug-in's submission and held-out score: the leaderboard's best entry in the
sample's format (train labels copied onto leaked test images when asked), every row checked
before writing, and the embedded demo's score against its solution."""

from __future__ import annotations

import logging

import pandas as pd

from podium.glue import StageJob
from podium.submit.check import check_submission
from podium.submit.leaderboard import best_entry
from podium.submit.score import score_submission, write_score
from podium.submit.submission import apply_leak_labels, format_submission, read_sample
from podium.tables import write_csv
from podium.task import TaskSpec

log = logging.getLogger(__name__)


def submit_job(job: StageJob) -> pd.DataFrame:
    """The ``write_submission`` job of a classification competition."""
    i, options = job.inputs, job.options
    best, test_file = best_entry(pd.read_csv(i["leaderboard"]), options["names"],
                                 i["tests"])
    spec = TaskSpec.load(i["task"])
    predictions = pd.read_parquet(test_file)
    if options["leak_labels"]:
        leaks = pd.read_csv(i["leaks"], dtype={"test_id": str, "train_label": str})
        predictions = apply_leak_labels(predictions, leaks, spec)
        trusted = int((~leaks["label_conflict"].astype(bool)).sum())
        log.info("copied train labels onto %d leaked test images", trusted)
    sample = read_sample(i["sample"], options["encoding"])
    values = options["values"]
    submission = format_submission(sample, predictions, spec, values)
    check_submission(submission, sample, spec, values)
    write_csv(submission, job.outputs["submission"])
    log.info("submission from %s: %d rows", best, len(submission))
    return submission


def score_job(job: StageJob) -> dict:
    """The ``score_submission`` job of an embedded classification demo."""
    i = job.inputs
    score = score_submission(i["submission"], i["solution"], TaskSpec.load(i["task"]),
                             job.options["values"])
    write_score(score, job.outputs["score"], "images")
    return score
