"""Plot the leaderboard, the scores per fold, the best entry's errors and learning curves."""

import re

import pandas as pd

from podium.ensemble.oof import TrainTruth, aligned_proba
from podium.glue import job_logging
from podium.submit.plots import (
    plot_best_entry,
    plot_fold_scores,
    plot_leaderboard,
    plot_learning_curves,
)
from podium.tables import read_json
from podium.task import TaskSpec

with job_logging(snakemake):
    i, o = snakemake.input, snakemake.output
    board = pd.read_csv(i.leaderboard)
    plot_leaderboard(board, o.leaderboard)
    plot_fold_scores([read_json(p) for p in i.cvs], o.folds)
    spec = TaskSpec.load(i.task)
    truth = TrainTruth.load(i.folds, i.manifest, spec)
    best = board["name"].iloc[0]
    oof = pd.read_parquet(dict(zip(snakemake.params.names, i.oofs, strict=True))[best])
    plot_best_entry(spec, truth.y, aligned_proba(oof, truth.ids, spec.prediction_columns),
                    best, o.best)
    histories = {}
    for path in i.histories:
        model, fold = re.search(r"models/([^/]+)/fold(\d+)/history.csv$", path).groups()
        histories[(model, int(fold))] = pd.read_csv(path)
    plot_learning_curves(histories, board["metric"].iloc[0], o.curves)
