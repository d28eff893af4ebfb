"""Adversarial validation on synthetic images with a known (or no) train/test shift."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from podium.ensemble.adversarial import (
    AdversarialResult,
    adversarial_validation,
    image_statistics,
    manifest_features,
    plot_adversarial,
    sample_weights,
    split_features,
)
from podium.errors import PodiumInputError


def make_images(rng: np.random.Generator, n: int, size: int = 12, channels: int = 1,
                shift: float = 0.0, spread: float = 8.0) -> np.ndarray:
    """uint8 images: a per-image brightness ~ N(100 + shift, spread) plus pixel noise."""
    base = rng.normal(100.0, spread, size=(n, 1, 1, 1)) + shift
    contrast = rng.uniform(10.0, 30.0, size=(n, 1, 1, 1))
    noise = rng.normal(0.0, 1.0, size=(n, size, size, channels)) * contrast
    return np.clip(base + noise, 0, 255).round().astype(np.uint8)


def features(images: np.ndarray, prefix: str) -> pd.DataFrame:
    stats = image_statistics(images)
    stats.index = pd.Index([f"{prefix}{i}" for i in range(len(stats))], name="id")
    return stats


def test_identical_distributions_give_auc_near_half() -> None:
    rng = np.random.default_rng(0)
    train = features(make_images(rng, 400, spread=20.0), "tr")
    test = features(make_images(rng, 400, spread=20.0), "te")
    result = adversarial_validation(train, test, n_folds=5, seed=0)
    assert abs(result.auc - 0.5) < 0.1
    assert len(result.fold_aucs) == 5
    assert result.train_test_probability.index.equals(train.index)
    assert result.train_test_probability.between(0, 1).all()


def test_brightness_shift_is_detected_and_explained() -> None:
    rng = np.random.default_rng(1)
    train = features(make_images(rng, 250), "tr")
    test = features(make_images(rng, 150, shift=40.0), "te")
    result = adversarial_validation(train, test, n_folds=4, seed=3)
    assert result.auc > 0.9
    assert all(a > 0.9 for a in result.fold_aucs)
    top = result.importance["feature"].iloc[0]
    assert top.split("_")[0] in {"mean", "p01", "p50", "p99"}, result.importance.head()
    assert result.importance["gain"].is_monotonic_decreasing
    summary = result.summary(top=3)
    assert json.loads(json.dumps(summary)) == summary
    assert summary["auc"] == pytest.approx(result.auc)
    assert summary["top_features"][0]["feature"] == top
    assert len(summary["top_features"]) == 3


def test_sample_weights_favour_test_like_train_rows() -> None:
    rng = np.random.default_rng(2)
    plain = make_images(rng, 200)
    shifted = make_images(rng, 100, shift=40.0)
    train = features(np.concatenate([plain, shifted]), "tr")
    test = features(make_images(rng, 200, shift=40.0), "te")
    result = adversarial_validation(train, test, n_folds=5, seed=0)
    clip = (0.1, 10.0)
    weights = sample_weights(result, clip=clip)
    assert weights.index.equals(train.index)
    assert weights.mean() == pytest.approx(1.0, abs=1e-9)
    assert weights.min() >= clip[0] and weights.max() <= clip[1]
    assert weights.iloc[200:].median() > 3 * weights.iloc[:200].median()
    assert weights.iloc[200:].mean() > 1 > weights.iloc[:200].mean()


def test_sample_weights_keep_mean_one_when_clipping_binds() -> None:
    probability = pd.Series(np.r_[np.full(5, 0.999), np.full(95, 0.001)])
    result = AdversarialResult(0.9, [0.9], pd.DataFrame({"feature": [], "gain": []}), probability)
    weights = sample_weights(result, clip=(0.5, 2.0))
    assert weights.mean() == pytest.approx(1.0, abs=1e-9)
    assert weights.min() >= 0.5 and weights.max() <= 2.0
    assert weights.iloc[0] == pytest.approx(2.0)
    with pytest.raises(PodiumInputError, match="adversarial.clip"):
        sample_weights(result, clip=(2.0, 10.0))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [1, 3])
def test_image_statistics_dtypes_channels_and_memmap(tmp_path, dtype, channels) -> None:
    rng = np.random.default_rng(3)
    top = np.iinfo(dtype).max
    array = rng.integers(0, top, size=(7, 9, 10, channels), endpoint=True).astype(dtype)
    array[0] = 0  # all black
    array[1] = top  # all white
    path = tmp_path / "train.npy"
    np.save(path, array)
    mapped = np.load(path, mmap_mode="r")
    assert isinstance(mapped, np.memmap)
    rows = np.array([5, 0, 1, 3, 6])
    stats = image_statistics(mapped, rows=rows, batch=2)
    assert list(stats.index) == list(rows)
    assert stats.index.name == "row"
    expected = {f"{s}_c{c}" for s in ("mean", "std", "p01", "p50", "p99", "dark", "bright",
                                      "grad") for c in range(channels)}
    if channels == 3:
        expected.add("colourfulness")
    assert set(stats.columns) == expected
    assert stats.notna().all().all()
    # Batched results equal one big batch and a direct computation on the in-memory array.
    whole = image_statistics(array, rows=rows, batch=100)
    pd.testing.assert_frame_equal(stats, whole)
    scaled = array[5].astype(np.float64) / top
    assert stats.loc[5, "mean_c0"] == pytest.approx(scaled[..., 0].mean(), rel=1e-5)
    assert stats.loc[5, "p50_c0"] == pytest.approx(np.median(scaled[..., 0]), rel=1e-5)
    grad = 0.5 * (np.abs(np.diff(scaled[..., 0], axis=0)).mean()
                  + np.abs(np.diff(scaled[..., 0], axis=1)).mean())
    assert stats.loc[5, "grad_c0"] == pytest.approx(grad, rel=1e-5)
    black, white = stats.loc[0], stats.loc[1]
    for c in range(channels):
        assert black[f"dark_c{c}"] == 1.0 and black[f"bright_c{c}"] == 0.0
        assert white[f"dark_c{c}"] == 0.0 and white[f"bright_c{c}"] == 1.0
        assert white[f"mean_c{c}"] == pytest.approx(1.0)
        assert black[f"grad_c{c}"] == 0.0 and black[f"std_c{c}"] == 0.0
    if channels == 3:
        assert black["colourfulness"] == 0.0  # grey has no colour
        assert stats.loc[5, "colourfulness"] > 0


def test_colourfulness_separates_grey_from_colour() -> None:
    grey = np.repeat(np.random.default_rng(4).integers(0, 256, (2, 8, 8, 1)), 3, axis=3)
    colour = grey.copy()
    colour[..., 0] = 255
    stats = image_statistics(np.concatenate([grey, colour]).astype(np.uint8))
    assert stats["colourfulness"].iloc[:2].max() == pytest.approx(0.0, abs=1e-6)
    assert stats["colourfulness"].iloc[2:].min() > 0.2


def test_manifest_and_split_features() -> None:
    manifest = pd.DataFrame({
        "id": ["a", "b", "c"], "split": ["train", "train", "test"],
        "height": [100, 200, 50], "width": [300, 200, 50], "channels": [3, 1, 3],
    })
    sizes = manifest_features(manifest, ["b", "a"])
    assert list(sizes.index) == ["b", "a"]
    assert list(sizes.columns) == ["height", "width", "aspect", "channels"]
    assert sizes.loc["a", "aspect"] == pytest.approx(3.0)
    assert sizes.loc["b", "channels"] == 1
    with pytest.raises(PodiumInputError, match="not in the manifest"):
        manifest_features(manifest, ["a", "zzz"])
    array = make_images(np.random.default_rng(5), 2, channels=3)
    index = pd.DataFrame({"id": ["b", "a"], "row": [1, 0]})
    both = split_features(array, index, manifest, batch=1)
    assert list(both.index) == ["b", "a"]
    assert both.loc["a", "width"] == 300
    assert both.loc["a", "mean_c0"] == pytest.approx(array[0, ..., 0].mean() / 255, rel=1e-5)


def test_bad_folds_and_mismatched_features_are_input_errors() -> None:
    rng = np.random.default_rng(6)
    train = features(make_images(rng, 20), "tr")
    test = features(make_images(rng, 3), "te")
    with pytest.raises(PodiumInputError, match="adversarial.n_folds"):
        adversarial_validation(train, test, n_folds=5)
    with pytest.raises(PodiumInputError, match="only in train"):
        adversarial_validation(train, test.drop(columns="grad_c0"), n_folds=2)


def test_plot_writes_png(tmp_path) -> None:
    rng = np.random.default_rng(7)
    train = features(make_images(rng, 60), "tr")
    test = features(make_images(rng, 40, shift=40.0), "te")
    result = adversarial_validation(train, test, n_folds=3, params={"n_estimators": 20})
    path = tmp_path / "adversarial.png"
    plot_adversarial(result, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
