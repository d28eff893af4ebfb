"""Plot the leaderboard and the learning curves."""

import re

import pandas as pd

from podium.glue import job_logging
from podium.submit.plots import plot_leaderboard, plot_learning_curves

with job_logging(snakemake):
    board = pd.read_csv(snakemake.input.leaderboard)
    plot_leaderboard(board, snakemake.output.leaderboard)
    histories = {}
    for path in snakemake.input.histories:
        model, fold = re.search(r"models/([^/]+)/fold(\d+)/history.csv$", path).groups()
        histories[(model, int(fold))] = pd.read_csv(path)
    plot_learning_curves(histories, board["metric"].iloc[0], snakemake.output.curves)
