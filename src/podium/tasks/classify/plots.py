"""The classify plug-in's report plots: the leaderboard, the scores per fold, learning curves
and the best entry's errors (confusion matrix, calibration or residuals by task)."""

from __future__ import annotations

import pandas as pd

from podium.glue import StageJob
from podium.submit.leaderboard import best_entry
from podium.submit.plots import (
    plot_best_entry,
    plot_fold_scores,
    plot_leaderboard,
    plot_learning_curves,
    read_histories,
)
from podium.tables import read_json
from podium.task import TaskSpec
from podium.tasks.classify.entries import TrainTruth, aligned_proba


def plot_job(job: StageJob) -> None:
    """The ``plot_results`` job of a classification competition."""
    i, o = job.inputs, job.outputs
    board = pd.read_csv(i["leaderboard"])
    plot_leaderboard(board, o["leaderboard"])
    plot_fold_scores([read_json(p) for p in i["cvs"]], o["folds"])
    spec = TaskSpec.load(i["task"])
    truth = TrainTruth.load(i["folds"], i["manifest"], spec)
    best, oof_file = best_entry(board, job.options["names"], i["oofs"])
    oof = pd.read_parquet(oof_file)
    plot_best_entry(spec, truth.y, aligned_proba(oof, truth.ids, spec.prediction_columns),
                    best, o["best"])
    plot_learning_curves(read_histories(i["histories"]), board["metric"].iloc[0], o["curves"])
