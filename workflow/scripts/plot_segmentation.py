"""Plot a segmentation run: the leaderboard, Dice per fold, learning curves and the best
entry's worst and best OOF masks."""

import re

import numpy as np
import pandas as pd

from podium.glue import job_logging
from podium.submit.plots import plot_fold_scores, plot_leaderboard, plot_learning_curves
from podium.tables import read_json
from podium.task import TaskSpec
from podium.tasks.segment.entries import SegmentTruth
from podium.tasks.segment.plots import plot_mask_examples

with job_logging(snakemake):
    i, o = snakemake.input, snakemake.output
    board = pd.read_csv(i.leaderboard)
    plot_leaderboard(board, o.leaderboard)
    plot_fold_scores([read_json(p) for p in i.cvs], o.folds)
    histories = {}
    for path in i.histories:
        model, fold = re.search(r"models/([^/]+)/fold(\d+)/history.csv$", path).groups()
        histories[(model, int(fold))] = pd.read_csv(path)
    plot_learning_curves(histories, "dice", o.curves)
    truth = SegmentTruth.load(i.folds, i.train_index, i.masks,
                         getattr(i, "instances", None))
    best = board["name"].iloc[0]
    maps = np.load(dict(zip(snakemake.params.names, i.oofs, strict=True))[best])
    images = np.load(i.train_array, mmap_mode="r")[truth.rows]
    plot_mask_examples(images, truth.class_masks(maps.shape[1]), maps, truth.ids, best, o.masks,
                       class_names=list(TaskSpec.load(i.task).classes))
