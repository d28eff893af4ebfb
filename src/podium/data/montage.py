"""A montage of duplicate pairs, so a user can judge the thresholds by eye."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from podium.preprocess.transforms import decode_image  # noqa: E402


def _pick_pairs(pairs: pd.DataFrame, n: int) -> pd.DataFrame:
    """Non-exact pairs spread over the score range, closest first, ending at the borderline."""
    near = pairs[pairs["kind"] != "exact"].sort_values("score", ascending=False)
    if len(near) <= n:
        return near
    return near.iloc[np.unique(np.linspace(0, len(near) - 1, n).round().astype(int))]


def _show(ax: plt.Axes, path: str, title: str) -> None:
    image = decode_image(path)
    ax.imshow(image[:, :, 0] if image.shape[2] == 1 else image[:, :, :3],
              cmap="gray" if image.shape[2] == 1 else None)
    ax.set_title(title, fontsize=7)
    ax.axis("off")


def plot_pair_montage(pairs: pd.DataFrame, manifest: pd.DataFrame, path: str | Path,
                      n_pairs: int = 12) -> None:
    """Up to ``n_pairs`` near/pixel pairs side by side with their ids, splits and scores."""
    chosen = _pick_pairs(pairs, n_pairs)
    info = manifest.set_index("id")
    columns = 4  # two pairs per row
    rows = max(1, int(np.ceil(len(chosen) / 2)))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 2.2, rows * 2.4), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for k, pair in enumerate(chosen.itertuples(index=False)):
        row, col = divmod(k, 2)
        for offset, image_id in enumerate((pair.id_a, pair.id_b)):
            split = info.at[image_id, "split"]
            title = f"{image_id} ({split})" + (f"\n{pair.kind} {pair.score:.3f}" if offset else "")
            _show(axes[row, 2 * col + offset], info.at[image_id, "path"], title)
    if chosen.empty:
        axes[0, 0].text(0.5, 0.5, "no near duplicates found", ha="center", va="center")
    fig.suptitle("Near-duplicate pairs, closest first", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
