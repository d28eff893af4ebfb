"""Plots people would rather look at than read: the leaderboard and the learning curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

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
