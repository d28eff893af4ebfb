"""Adversarial validation: can a classifier tell train images from test images?

Before trusting CV, Kaggle competitors check whether the test set looks like the training set.
Cheap per-image statistics (brightness, contrast, clipping, sharpness, colour, original size) are
labelled 0 for train and 1 for test, and a small LightGBM learns to separate them under
cross-validation. An out-of-fold ROC AUC near 0.5 means no detectable shift; near 1 means CV on
train may not predict the leaderboard. The gain importances say *what* shifted, and the train
rows' out-of-fold test-likeness gives density-ratio weights for training on test-like rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from podium.errors import PodiumInputError  # noqa: E402

DARK = 0.02  # a pixel at or below 2% of the dtype's range counts as near-black
BRIGHT = 0.98  # ... at or above 98% as near-white (saturated)
PERCENTILES = (1, 50, 99)
MAX_VALUES_PER_BATCH = 1 << 25  # ~128 MB of float32 per batch, whatever the image size

DEFAULT_PARAMS = {
    "n_estimators": 100, "num_leaves": 15, "learning_rate": 0.05, "min_child_samples": 20,
    "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8,
}


def _value_range(dtype: np.dtype) -> float:
    """The dtype's full scale: statistics are fractions of it, so uint8 and uint16 compare."""
    if np.issubdtype(dtype, np.integer):
        return float(np.iinfo(dtype).max)
    return 1.0  # float images are assumed to be in [0, 1] already


def _batch_statistics(images: np.ndarray, scale: float) -> dict[str, np.ndarray]:
    """Statistics of a ``(b, H, W, C)`` batch, one value per image per column."""
    x = images.astype(np.float32) / np.float32(scale)
    b, channels = x.shape[0], x.shape[-1]
    flat = x.reshape(b, -1, channels)
    columns: dict[str, np.ndarray] = {}
    mean = flat.mean(axis=1, dtype=np.float64)
    std = flat.std(axis=1, dtype=np.float64)
    quantiles = np.percentile(flat, PERCENTILES, axis=1)  # (len(PERCENTILES), b, C)
    dark = (flat <= DARK).mean(axis=1)
    bright = (flat >= BRIGHT).mean(axis=1)
    gradient = 0.5 * (_mean_abs_diff(x, axis=1) + _mean_abs_diff(x, axis=2))
    for c in range(channels):
        columns[f"mean_c{c}"] = mean[:, c]
        columns[f"std_c{c}"] = std[:, c]
        for q, p in zip(quantiles, PERCENTILES, strict=True):
            columns[f"p{p:02d}_c{c}"] = q[:, c]
        columns[f"dark_c{c}"] = dark[:, c]
        columns[f"bright_c{c}"] = bright[:, c]
        columns[f"grad_c{c}"] = gradient[:, c]
    if channels == 3:
        columns["colourfulness"] = _colourfulness(flat)
    return columns


def _mean_abs_diff(x: np.ndarray, axis: int) -> np.ndarray:
    """Mean absolute difference between neighbours along ``axis`` of ``(b, H, W, C)``, per
    image and channel: blur, upscaling or heavy compression lower it."""
    if x.shape[axis] < 2:
        return np.zeros((x.shape[0], x.shape[-1]))
    return np.abs(np.diff(x, axis=axis)).mean(axis=(1, 2), dtype=np.float64)


def _colourfulness(flat: np.ndarray) -> np.ndarray:
    """Hasler and Suesstrunk's colourfulness of ``(b, pixels, 3)`` RGB in [0, 1]: greyscale
    scans mixed into a colour test set show up as zeros."""
    r, g, b = flat[..., 0], flat[..., 1], flat[..., 2]
    rg = r - g
    yb = 0.5 * (r + g) - b
    spread = np.hypot(rg.std(axis=1, dtype=np.float64), yb.std(axis=1, dtype=np.float64))
    offset = np.hypot(rg.mean(axis=1, dtype=np.float64), yb.mean(axis=1, dtype=np.float64))
    return spread + 0.3 * offset


def image_statistics(array: np.ndarray, rows: np.ndarray | None = None,
                     batch: int = 1024) -> pd.DataFrame:
    """Cheap per-image statistics of a packed ``N x H x W x C`` array, indexed by row.

    Reads ``batch`` rows at a time (fewer for big images), so a memory map is never loaded
    whole. Per channel ``c``: ``mean_c``, ``std_c``, percentiles ``p01_c``, ``p50_c``,
    ``p99_c``, near-black and near-white fractions ``dark_c`` and ``bright_c``, and mean
    absolute gradient ``grad_c``; plus ``colourfulness`` for 3-channel images. Intensities are
    fractions of the dtype's range.
    """
    if array.ndim == 3:  # (N, H, W): a single channel without its axis
        array = array[..., None]
    if array.ndim != 4:
        raise ValueError(f"expected an N x H x W x C array, got shape {array.shape}")
    if batch < 1:
        raise PodiumInputError(f"config key adversarial.batch: must be >= 1, got {batch}.")
    rows = np.arange(len(array)) if rows is None else np.asarray(rows, dtype=np.int64)
    per_image = int(np.prod(array.shape[1:]))
    step = max(1, min(batch, MAX_VALUES_PER_BATCH // max(1, per_image)))
    scale = _value_range(array.dtype)
    parts: list[pd.DataFrame] = []
    for start in range(0, len(rows), step):
        chunk = rows[start:start + step]
        order = np.argsort(chunk, kind="stable")  # ascending reads are kinder to a memory map
        images = np.empty((len(chunk), *array.shape[1:]), dtype=array.dtype)
        images[order] = array[chunk[order]]
        parts.append(pd.DataFrame(_batch_statistics(images, scale)))
    if not parts:  # no rows: still return the columns, so joins and checks keep working
        empty = np.zeros((1, *array.shape[1:]), dtype=array.dtype)
        parts.append(pd.DataFrame(_batch_statistics(empty, scale)).iloc[:0])
    stats = pd.concat(parts, ignore_index=True)
    stats.index = pd.Index(rows, name="row")
    return stats


def manifest_features(manifest: pd.DataFrame, ids: pd.Series | np.ndarray | list) -> pd.DataFrame:
    """Original ``height``, ``width``, ``aspect`` (width / height) and ``channels`` of ``ids``,
    indexed by id: packed arrays are resized to one square size, which hides them."""
    missing = [c for c in ("id", "height", "width", "channels") if c not in manifest.columns]
    if missing:
        raise PodiumInputError(f"manifest lacks columns {missing}; re-run ingest.")
    table = manifest.drop_duplicates("id").set_index("id")
    ids = pd.Index(ids, name="id")
    unknown = ids.difference(table.index)
    if len(unknown):
        raise PodiumInputError(
            f"{len(unknown)} ids are not in the manifest (first: {list(unknown[:5])}); "
            "the packed index and the manifest come from different ingests."
        )
    rows = table.loc[ids, ["height", "width", "channels"]].astype(np.float64)
    rows["aspect"] = rows["width"] / rows["height"].where(rows["height"] > 0)
    return rows[["height", "width", "aspect", "channels"]]


def split_features(array: np.ndarray, index: pd.DataFrame, manifest: pd.DataFrame | None = None,
                   batch: int = 1024) -> pd.DataFrame:
    """Statistics of one packed split indexed by image id (``index`` has ``id`` and ``row``),
    joined with the manifest's original sizes when it is given."""
    stats = image_statistics(array, index["row"].to_numpy(), batch=batch)
    stats.index = pd.Index(index["id"].to_numpy(), name="id")
    if manifest is None:
        return stats
    return stats.join(manifest_features(manifest, index["id"]))


@dataclass
class AdversarialResult:
    """What adversarial validation found: how separable train and test are, and by what."""

    auc: float
    fold_aucs: list[float]
    importance: pd.DataFrame  # feature, gain (mean over folds), most important first
    train_test_probability: pd.Series  # OOF P(test | x) of each train row, by train id

    def summary(self, top: int = 10) -> dict:
        """A JSON-able digest for ``adversarial.json``."""
        head = self.importance.head(top)
        return {
            "auc": float(self.auc),
            "fold_aucs": [float(a) for a in self.fold_aucs],
            "n_train": int(len(self.train_test_probability)),
            "top_features": [{"feature": str(f), "gain": float(g)}
                             for f, g in zip(head["feature"], head["gain"], strict=True)],
        }


def _numeric_matrix(train: pd.DataFrame, test: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """Train rows then test rows over the same numeric columns, or an error naming the gap."""
    if list(train.columns) != list(test.columns):
        only_train = sorted(set(train.columns) - set(test.columns))
        only_test = sorted(set(test.columns) - set(train.columns))
        if only_train or only_test:
            raise PodiumInputError(
                f"train and test features differ: only in train {only_train}, "
                f"only in test {only_test}."
            )
        test = test[train.columns]
    both = pd.concat([train, test], ignore_index=True)
    bad = [c for c in both.columns if not pd.api.types.is_numeric_dtype(both[c])]
    if bad:
        raise PodiumInputError(f"adversarial features must be numeric; not numeric: {bad}.")
    return both.to_numpy(np.float64), [str(c) for c in both.columns]


def adversarial_validation(train_features: pd.DataFrame, test_features: pd.DataFrame,
                           n_folds: int = 5, seed: int = 0, params: dict | None = None,
                           threads: int = 1) -> AdversarialResult:
    """Cross-validated LightGBM telling train (0) from test (1) rows.

    ``params`` override the small default forest. Returns the OOF ROC AUC, per-fold AUCs, mean
    gain importances and every train row's OOF probability of being test.
    """
    from lightgbm import LGBMClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    x, names = _numeric_matrix(train_features, test_features)
    n_train, n_test = len(train_features), len(test_features)
    if n_folds < 2 or n_folds > min(n_train, n_test):
        raise PodiumInputError(
            f"config key adversarial.n_folds: need 2 <= n_folds <= min(train, test) rows "
            f"= {min(n_train, n_test)}, got {n_folds}."
        )
    y = np.r_[np.zeros(n_train, dtype=int), np.ones(n_test, dtype=int)]
    settings = {**DEFAULT_PARAMS, **(params or {}),
                "random_state": seed, "n_jobs": threads, "verbose": -1}
    oof = np.zeros(len(y))
    gains = np.zeros(len(names))
    fold_aucs: list[float] = []
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for fit_rows, valid_rows in folds.split(x, y):
        try:
            model = LGBMClassifier(**settings)
        except TypeError as err:
            raise PodiumInputError(
                f"config key adversarial.params: LightGBM rejected the params ({err})."
            ) from err
        model.fit(x[fit_rows], y[fit_rows])
        oof[valid_rows] = model.predict_proba(x[valid_rows])[:, 1]
        fold_aucs.append(float(roc_auc_score(y[valid_rows], oof[valid_rows])))
        gains += model.booster_.feature_importance(importance_type="gain") / n_folds
    importance = (pd.DataFrame({"feature": names, "gain": gains})
                  .sort_values(["gain", "feature"], ascending=[False, True], kind="stable")
                  .reset_index(drop=True))
    probability = pd.Series(oof[:n_train], index=train_features.index, name="test_probability")
    return AdversarialResult(float(roc_auc_score(y, oof)), fold_aucs, importance, probability)


def sample_weights(result: AdversarialResult,
                   clip: tuple[float, float] = (0.1, 10.0)) -> pd.Series:
    """Density-ratio weights ``p / (1 - p)`` per train id, clipped to ``clip`` and with mean 1.

    The ratio estimates p_test(x) / p_train(x) up to the train/test size ratio, a constant that
    the normalisation removes. The scale is solved so that the mean is exactly 1 *after*
    clipping (clipping then renormalising would leave the bounds again).
    """
    low, high = (float(v) for v in clip)
    if not 0 < low <= 1 <= high:
        raise PodiumInputError(
            f"config key adversarial.clip: need 0 < low <= 1 <= high, got {clip}."
        )
    p = np.clip(result.train_test_probability.to_numpy(np.float64), 1e-6, 1 - 1e-6)
    ratio = p / (1 - p)
    index = result.train_test_probability.index
    if not len(ratio):
        return pd.Series(ratio, index=index, name="weight")
    # mean(clip(s * ratio)) rises from low to high as s grows: bisect on log s for mean 1.
    lo, hi = np.log(low / ratio.max()) - 1, np.log(high / ratio.min()) + 1
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if np.clip(np.exp(mid) * ratio, low, high).mean() < 1:
            lo = mid
        else:
            hi = mid
    weights = np.clip(np.exp(0.5 * (lo + hi)) * ratio, low, high)
    free = (weights > low) & (weights < high)
    if free.any():  # remove the last rounding error on the unclipped rows
        target = len(weights) - weights[~free].sum()
        weights[free] *= target / weights[free].sum()
        weights = np.clip(weights, low, high)
    return pd.Series(weights, index=index, name="weight")


def plot_adversarial(result: AdversarialResult, path: str | Path, top: int = 15) -> None:
    """Top gain importances as bars beside the histogram of train rows' test-likeness: a glance
    says whether there is a shift, what drives it, and how many train rows look like test."""
    head = result.importance.head(top).iloc[::-1]
    fig, (bars, hist) = plt.subplots(1, 2, figsize=(11, max(3.5, 0.3 * len(head) + 1.5)))
    bars.barh(head["feature"], head["gain"], color="#4C72B0")
    bars.set_xlabel("gain (mean over folds)")
    bars.set_title(f"top {len(head)} features")
    hist.hist(result.train_test_probability.to_numpy(), bins=40, range=(0, 1), color="#C44E52")
    hist.set_xlabel("OOF P(test) of train rows")
    hist.set_ylabel("train rows")
    hist.set_title("train rows' test-likeness")
    verdict = "no detectable shift" if result.auc < 0.6 else "train/test shift"
    fig.suptitle(f"Adversarial validation: ROC AUC {result.auc:.3f} ({verdict})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
