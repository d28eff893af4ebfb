"""Plots people would rather look at than read: the leaderboard, scores per fold, learning
curves, and where the best entry goes wrong."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import confusion_matrix, f1_score  # noqa: E402

from podium.metrics import get_metric  # noqa: E402
from podium.task import TaskSpec  # noqa: E402

KIND_COLOURS = {"model": "#4C72B0", "blend": "#55A868", "stacker": "#C44E52",
                "postprocess": "#8172B3"}


def plot_leaderboard(leaderboard: pd.DataFrame, path: str | Path) -> None:
    """Horizontal bars of CV mean with fold std as error bars, best on top, coloured by kind."""
    board = leaderboard.iloc[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(board) + 1.2))
    ax.barh(board["name"], board["cv_mean"], xerr=board["cv_std"], capsize=3,
            color=[KIND_COLOURS.get(k, "grey") for k in board["kind"]])
    low = (board["cv_mean"] - board["cv_std"]).min()
    high = (board["cv_mean"] + board["cv_std"]).max()
    pad = max(1e-3, 0.1 * (high - low))
    ax.set_xlim(low - pad, high + pad)
    ax.set_xlabel(f"CV {board['metric'].iloc[0]} (mean ± std over folds)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in KIND_COLOURS.values()]
    ax.legend(handles, KIND_COLOURS, loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_learning_curves(histories: dict[tuple[str, int], pd.DataFrame], metric: str,
                         path: str | Path) -> None:
    """Train loss and validation metric per epoch, one line per fold, one column per model."""
    models = sorted({model for model, _ in histories})
    last_epoch = max(int(h["epoch"].max()) for h in histories.values())
    fig, axes = plt.subplots(2, len(models), figsize=(4 * len(models), 6), squeeze=False)
    for col, model in enumerate(models):
        for (name, fold), history in sorted(histories.items()):
            if name != model:
                continue
            style = {"marker": "o", "markersize": 3, "label": f"fold {fold}"}
            axes[0, col].plot(history["epoch"], history["train_loss"], **style)
            axes[1, col].plot(history["epoch"], history[f"valid_{metric}"], **style)
        axes[0, col].set_title(model)
        axes[0, col].set_ylabel("train loss")
        axes[1, col].set_ylabel(f"valid {metric}")
        axes[1, col].set_xlabel("epoch")
        for ax in axes[:, col]:
            ax.set_xlim(0.5, last_epoch + 0.5)
            ax.set_xticks(range(1, last_epoch + 1, max(1, last_epoch // 8)))
        axes[0, col].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_fold_scores(cvs: list[dict], path: str | Path) -> None:
    """Every entry's score on each fold as dots, best entry on top: whether an entry wins on
    every fold or on average only, which the mean on the leaderboard hides."""
    metric = get_metric(cvs[0]["metric"])
    order = sorted(cvs, key=lambda cv: cv["cv_mean"], reverse=not metric.greater_is_better)
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(order) + 1.2))
    for row, cv in enumerate(order):
        scores = cv["fold_scores"]
        ax.scatter(scores, [row] * len(scores), s=18,
                   color=KIND_COLOURS.get(cv["kind"], "grey"), alpha=0.8)
        ax.plot([cv["cv_mean"]] * 2, [row - 0.3, row + 0.3], color="black", lw=1)
        for fold, score in enumerate(scores):
            ax.annotate(str(fold), (score, row), textcoords="offset points", xytext=(0, 5),
                        ha="center", fontsize=6)
    ax.set_yticks(range(len(order)), [cv["name"] for cv in order])
    ax.set_xlabel(f"{metric.name} per fold (digit: fold; bar: mean)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_best_entry(spec: TaskSpec, y: np.ndarray, proba: np.ndarray, name: str,
                    path: str | Path) -> None:
    """Where the best entry's OOF predictions go wrong: a confusion matrix (single-label and
    ordinal), per-class F1 (multilabel), or predicted against true values (regression)."""
    fig, ax = plt.subplots(figsize=(6, 5))
    if spec.task == "regression":
        ax.scatter(y, proba[:, 0], s=6, alpha=0.5)
        low, high = float(min(y.min(), proba.min())), float(max(y.max(), proba.max()))
        ax.plot([low, high], [low, high], color="black", lw=1)
        ax.set_xlabel("true value")
        ax.set_ylabel("OOF prediction")
    elif spec.is_multilabel:
        scores = f1_score(y, spec.decide(proba), average=None, zero_division=0.0)
        ax.barh(list(spec.classes), scores, color=KIND_COLOURS["model"])
        ax.set_xlim(0, 1)
        ax.set_xlabel(f"OOF F1 per class ({spec.multilabel_rule} at 0.5)")
    else:
        if spec.task == "ordinal":
            labels = list(spec.label_space.grades)
            truth, predicted = y.astype(int), spec.grades(proba[:, 0])
        else:
            labels = list(range(spec.n_classes))
            truth, predicted = y, proba.argmax(axis=1)
        matrix = confusion_matrix(truth, predicted, labels=labels)
        ax.imshow(matrix, cmap="Blues")
        for (i, j), count in np.ndenumerate(matrix):
            if count:
                ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                        color="white" if count > matrix.max() / 2 else "black")
        ticks = list(spec.classes)
        ax.set_xticks(range(len(ticks)), ticks, rotation=90)
        ax.set_yticks(range(len(ticks)), ticks)
        ax.set_xlabel("OOF prediction")
        ax.set_ylabel("truth")
    ax.set_title(f"{name}: out-of-fold predictions")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def read_histories(paths: list[str]) -> dict[tuple[str, int], pd.DataFrame]:
    """Every fold's ``history.csv`` by (model, fold), read from its path."""
    histories = {}
    for path in paths:
        model, fold = re.search(r"models/([^/]+)/fold(\d+)/history.csv$", path).groups()
        histories[(model, int(fold))] = pd.read_csv(path)
    return histories
