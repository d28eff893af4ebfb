"""Binary-mask post-processing fitted on OOF probability maps: a threshold, a minimum component
area and an empty-mask classifier, plus watershed splitting of touching objects.

In SIIM pneumothorax, Severstal and Airbus ships these few numbers were worth more than most
model changes: per-image Dice scores an empty image with any predicted pixel 0, so small
speckles and faint ghosts must go, while the object rims that a 0.5 cut loses must stay. As in
:mod:`podium.ensemble.postprocess`, everything is learnt from OOF rows only, and
:func:`fit_postprocess_fold_by_fold` scores it honestly: fold k's masks come from parameters
fitted on the other folds' rows; :func:`fit_postprocess` fits on all rows for the test images.
Fitted parameters are plain JSON (the LightGBM model as its text dump).

Shapes: probabilities are ``(N, H, W)`` floats in [0, 1] (or one ``(H, W)`` image); truth
masks have the same shape, any nonzero pixel being foreground. Components are 8-connected.
Dice is per image (both empty scores 1), averaged over images, as on the leaderboards.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np
import pandas as pd

from podium.ensemble.crossfit import cross_fit
from podium.errors import PodiumInputError
from podium.metrics.masks import MASK_THRESHOLD, dice_from_counts, image_dice

DEFAULT_THRESHOLD = MASK_THRESHOLD  # the cut every unfitted mask entry is scored at
MIN_GAIN = 0.002
"""A fit must beat the defaults (threshold 0.5, nothing removed, nothing emptied) by this much
mean Dice on the images it is fitted on, else the defaults are kept: with a model that is
already well calibrated, a threshold that wins by a few thousandths on some folds is noise,
and applied to another fold (whose model differs) it costs more than it won."""
DEFAULT_THRESHOLDS: tuple[float, ...] = tuple(
    float(t) for t in np.round(np.arange(0.2, 0.8001, 0.05), 2))
#: Default minimum areas as fractions of the image (SIIM winners used ~0.2-0.3% at 1024 px).
MIN_AREA_FRACTIONS: tuple[float, ...] = (0.0, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01,
                                         0.02, 0.05)
STAT_COLUMNS: tuple[str, ...] = (
    "max_prob", "mean_prob", "std_prob", "sum_prob", "q99_prob",
    "area_030", "area_050", "area_070", "frac_050",
    "n_components_050", "largest_component_050", "mean_prob_050",
)
DEFAULT_CLASSIFIER_PARAMS: dict[str, Any] = {
    "n_estimators": 50, "learning_rate": 0.1, "num_leaves": 7, "min_child_samples": 5,
    "deterministic": True, "force_col_wise": True,
}


# ---------------------------------------------------------------------------- checks


def prob_stack(probs: np.ndarray) -> tuple[np.ndarray, bool]:
    """``(N, H, W)`` float32 probabilities and whether the input was one ``(H, W)`` image."""
    probs = np.asarray(probs)
    if probs.ndim not in (2, 3) or probs.size == 0:
        raise PodiumInputError(f"segmentation probabilities must be a non-empty (H, W) or "
                               f"(N, H, W) array, got shape {probs.shape}.")
    if not np.issubdtype(probs.dtype, np.number) or np.issubdtype(probs.dtype, np.complexfloating):
        raise PodiumInputError(f"segmentation probabilities must be numbers, got {probs.dtype}.")
    stack = probs.astype(np.float32, copy=False)
    if not np.isfinite(stack).all() or stack.min() < 0 or stack.max() > 1:
        raise PodiumInputError("segmentation probabilities must be finite and in [0, 1]; "
                               "apply a sigmoid to logits and divide 0-255 maps by 255.")
    single = stack.ndim == 2
    return (stack[None] if single else stack), single


def _truth_stack(masks: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    masks = np.asarray(masks)
    if masks.ndim == 2:
        masks = masks[None]
    if masks.shape != shape:
        raise PodiumInputError(f"truth masks have shape {masks.shape} but the probabilities "
                               f"have {shape}; they must match image for image.")
    return masks != 0


def check_threshold(threshold: float) -> float:
    """A probability cut in [0, 1] as a float; anything else fails with what to give."""
    if isinstance(threshold, bool) or not (isinstance(threshold, int | float | np.floating)
                                           and 0 <= threshold <= 1):
        raise PodiumInputError(f"mask threshold must be a number in [0, 1], got {threshold!r}.")
    return float(threshold)


def check_min_area(min_area: int) -> int:
    """A minimum object area as whole pixels >= 0; anything else fails with what to give."""
    if isinstance(min_area, bool) or not isinstance(min_area, int | np.integer) or min_area < 0:
        raise PodiumInputError(f"min_area must be an integer >= 0 pixels, got {min_area!r}.")
    return int(min_area)


# ---------------------------------------------------------------------------- components


def _components(binary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """8-connected labels of one 2-D 0/1 image and each label's area (label 0: background)."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats(
        np.ascontiguousarray(binary, dtype=np.uint8), connectivity=8)
    return labels, stats[:, cv2.CC_STAT_AREA]


def apply_threshold_min_area(prob: np.ndarray, threshold: float, min_area: int) -> np.ndarray:
    """``prob >= threshold`` as a uint8 mask of the input's shape, without the connected
    components smaller than ``min_area`` pixels (0 and 1 keep every component)."""
    stack, single = prob_stack(prob)
    threshold = check_threshold(threshold)
    min_area = check_min_area(min_area)
    binary = (stack >= threshold).astype(np.uint8)
    if min_area > 1:
        for i in range(len(binary)):
            labels, area = _components(binary[i])
            keep = (area >= min_area).astype(np.uint8)
            keep[0] = 0
            binary[i] = keep[labels]
    return binary[0] if single else binary


class _Components:
    """Every image's components at one threshold: image index, area and overlap with the
    truth, so that Dice at any minimum area is a pair of bincounts, with no relabelling."""

    def __init__(self, stack: np.ndarray, truth: np.ndarray, threshold: float) -> None:
        images, areas, overlaps = [], [], []
        for i in range(len(stack)):
            labels, area = _components(stack[i] >= threshold)
            overlap = np.bincount(labels[truth[i]], minlength=len(area))
            images.append(np.full(len(area) - 1, i))
            areas.append(area[1:])
            overlaps.append(overlap[1:])
        self.n_images = len(stack)
        self.image = np.concatenate(images)
        self.area = np.concatenate(areas).astype(np.float64)
        self.overlap = np.concatenate(overlaps).astype(np.float64)

    def dice(self, true_area: np.ndarray, min_area: int) -> np.ndarray:
        """Per-image Dice once the components under ``min_area`` pixels are dropped."""
        keep = self.area >= min_area
        image = self.image[keep]
        predicted = np.bincount(image, weights=self.area[keep], minlength=self.n_images)
        overlap = np.bincount(image, weights=self.overlap[keep], minlength=self.n_images)
        return dice_from_counts(overlap, predicted, true_area)


# ---------------------------------------------------------------------------- grid search


class _Oof:
    """What every fit reuses: the stacks, the grids and each threshold's component table,
    computed once for all images and then sliced by the rows a fit may use."""

    def __init__(self, probs: np.ndarray, masks: np.ndarray,
                 thresholds: Sequence[float] | None, min_areas: Sequence[int] | None) -> None:
        self.probs, _ = prob_stack(probs)
        self.truth = _truth_stack(masks, self.probs.shape)
        pixels = self.probs.shape[1] * self.probs.shape[2]
        if thresholds is None:
            thresholds = DEFAULT_THRESHOLDS
        if min_areas is None:
            min_areas = [round(f * pixels) for f in MIN_AREA_FRACTIONS]
        thresholds = [check_threshold(t) for t in thresholds] + [DEFAULT_THRESHOLD]
        min_areas = [check_min_area(m) for m in min_areas] + [0]
        self.thresholds = np.unique(thresholds)
        self.min_areas = np.unique(min_areas)
        self.true_area = self.truth.reshape(len(self.truth), -1).sum(axis=1).astype(np.float64)
        self.is_empty = self.true_area == 0
        self.tables = [_Components(self.probs, self.truth, t) for t in self.thresholds]
        self._stats: pd.DataFrame | None = None

    @property
    def stats(self) -> pd.DataFrame:
        if self._stats is None:
            self._stats = mask_statistics(self.probs)
        return self._stats

    def fit_grid(self, rows: np.ndarray, p_empty: np.ndarray | None = None) -> dict[str, Any]:
        """Best (threshold, min_area) on ``rows`` by mean Dice; ties go to the threshold
        closest to 0.5, then the smallest area, so a flat score keeps the default.

        With ``p_empty`` (each row's P(empty)), each pair is scored after its own best empty
        cut, so the three are chosen together: a large min area that also wipes faint ghosts
        off empty images loses to a smaller one once the classifier removes the ghosts."""
        n_t, n_m = len(self.thresholds), len(self.min_areas)
        scores = np.empty((n_t, n_m))
        cuts: list[list[float | None]] = [[None] * n_m for _ in range(n_t)]
        is_empty = self.is_empty[rows].astype(np.float64)
        for t, table in enumerate(self.tables):
            for m, min_area in enumerate(self.min_areas):
                kept = table.dice(self.true_area, min_area)[rows]
                if p_empty is None:
                    scores[t, m] = kept.mean()
                else:
                    cuts[t][m], scores[t, m] = _choose_empty_threshold(p_empty, is_empty, kept)
        best = np.argwhere(scores >= scores.max() - 1e-12)
        order = np.lexsort((self.min_areas[best[:, 1]],
                            np.abs(self.thresholds[best[:, 0]] - DEFAULT_THRESHOLD)))
        t, m = best[order[0]]
        default = self.dice_at(DEFAULT_THRESHOLD, 0)[rows].mean()
        return {"threshold": float(self.thresholds[t]), "min_area": int(self.min_areas[m]),
                "empty_threshold": cuts[t][m], "dice": float(scores[t, m]),
                "dice_default": float(default)}

    def dice_at(self, threshold: float, min_area: int) -> np.ndarray:
        table = self.tables[int(np.searchsorted(self.thresholds, threshold))]
        return table.dice(self.true_area, min_area)


def fit_threshold_min_area(probs: np.ndarray, masks: np.ndarray,
                           thresholds: Sequence[float] | None = None,
                           min_areas: Sequence[int] | None = None) -> dict[str, Any]:
    """Grid search for the threshold and minimum component area with the best mean Dice.

    Defaults: thresholds 0.20..0.80 by 0.05 and minimum areas of 0 to 5% of the image
    (:data:`MIN_AREA_FRACTIONS`); 0.5 and 0 are always tried, so the fitted rows never score
    below ``dice_default`` (threshold 0.5, every component kept). Each threshold labels the
    components once; every minimum area is then scored from that one table."""
    oof = _Oof(probs, masks, thresholds, min_areas)
    fitted = oof.fit_grid(np.ones(len(oof.probs), dtype=bool))
    return {key: fitted[key] for key in ("threshold", "min_area", "dice", "dice_default")}


# ---------------------------------------------------------------------------- empty masks


def mask_statistics(probs: np.ndarray) -> pd.DataFrame:
    """One row of :data:`STAT_COLUMNS` per image: what tells an empty image from one whose
    object is small (peak and mean probability, areas above 0.3/0.5/0.7, the components at
    0.5 and how sure the model is inside them)."""
    stack, _ = prob_stack(probs)
    flat = stack.reshape(len(stack), -1).astype(np.float64)
    above = flat >= 0.5
    area_050 = above.sum(axis=1)
    n_components = np.zeros(len(stack), dtype=np.int64)
    largest = np.zeros(len(stack), dtype=np.int64)
    for i in np.flatnonzero(area_050):
        _, area = _components(stack[i] >= 0.5)
        n_components[i] = len(area) - 1
        largest[i] = area[1:].max()
    return pd.DataFrame({
        "max_prob": flat.max(axis=1),
        "mean_prob": flat.mean(axis=1),
        "std_prob": flat.std(axis=1),
        "sum_prob": flat.sum(axis=1),
        "q99_prob": np.quantile(flat, 0.99, axis=1),
        "area_030": (flat >= 0.3).sum(axis=1),
        "area_050": area_050,
        "area_070": (flat >= 0.7).sum(axis=1),
        "frac_050": area_050 / flat.shape[1],
        "n_components_050": n_components,
        "largest_component_050": largest,
        "mean_prob_050": np.where(above, flat, 0.0).sum(axis=1) / np.maximum(area_050, 1),
    }, columns=list(STAT_COLUMNS))


class EmptyMaskClassifier:
    """LightGBM on :func:`mask_statistics` giving each image's probability of an empty mask.

    ``params`` override :data:`DEFAULT_CLASSIFIER_PARAMS` (a small, deterministic forest on
    one thread). Fitted on a single class (every image empty, or none), it predicts that
    class's constant 1.0 or 0.0 instead of failing: a fold with no empty image then simply
    never empties one. ``predict_proba`` returns one column, P(empty), not sklearn's two.
    """

    def __init__(self, params: dict[str, Any] | None = None, seed: int = 0) -> None:
        self.params = params
        self.seed = seed

    def _matrix(self, stats: pd.DataFrame | np.ndarray, fitting: bool) -> np.ndarray:
        if isinstance(stats, pd.DataFrame):
            if fitting:
                self.columns_ = [str(c) for c in stats.columns]
            missing = [c for c in self.columns_ if c not in stats.columns]
            if missing:
                raise PodiumInputError(f"empty-mask statistics lack the columns {missing} "
                                       f"that the classifier was fitted on.")
            x = stats[self.columns_].to_numpy(dtype=np.float64)
        else:
            x = np.asarray(stats, dtype=np.float64)
            if x.ndim != 2:
                raise PodiumInputError(f"empty-mask statistics must be a table, got shape "
                                       f"{x.shape}.")
            if fitting:
                self.columns_ = [f"f{j}" for j in range(x.shape[1])]
            elif x.shape[1] != len(self.columns_):
                raise PodiumInputError(f"empty-mask statistics have {x.shape[1]} columns, the "
                                       f"classifier was fitted on {len(self.columns_)}.")
        return x

    def fit(self, stats: pd.DataFrame | np.ndarray,
            is_empty: np.ndarray) -> EmptyMaskClassifier:
        x = self._matrix(stats, fitting=True)
        y = np.asarray(is_empty).reshape(-1).astype(bool)
        if len(y) != len(x) or len(y) == 0:
            raise PodiumInputError(f"the empty-mask classifier needs one is_empty flag per "
                                   f"statistics row, got {len(y)} flags for {len(x)} rows.")
        if y.all() or not y.any():
            self.constant_: float | None = float(y[0])
            self.booster_: Any = None
            return self
        from lightgbm import LGBMClassifier
        from lightgbm.basic import LightGBMError

        settings = {**DEFAULT_CLASSIFIER_PARAMS, **(self.params or {}),
                    "random_state": self.seed, "n_jobs": 1, "verbose": -1}
        try:
            model = LGBMClassifier(**settings).fit(x, y.astype(np.int64))
        except (TypeError, ValueError, LightGBMError) as err:
            raise PodiumInputError(f"empty-mask classifier: LightGBM rejected the params "
                                   f"{self.params!r} ({err}).") from err
        self.constant_ = None
        self.booster_ = model.booster_
        return self

    def predict_proba(self, stats: pd.DataFrame | np.ndarray) -> np.ndarray:
        x = self._matrix(stats, fitting=False)
        if self.constant_ is not None:
            return np.full(len(x), self.constant_)
        return np.asarray(self.booster_.predict(x), dtype=np.float64)

    def fitted_params(self) -> dict[str, Any]:
        return {"params": self.params, "seed": self.seed, "columns": list(self.columns_),
                "constant": self.constant_,
                "model": None if self.booster_ is None else self.booster_.model_to_string()}

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> EmptyMaskClassifier:
        made = cls(params["params"], params["seed"])
        made.columns_ = list(params["columns"])
        made.constant_ = params["constant"]
        made.booster_ = None
        if params["model"] is not None:
            from lightgbm import Booster

            made.booster_ = Booster(model_str=params["model"])
        return made


def _choose_empty_threshold(p_empty: np.ndarray, is_empty: np.ndarray,
                            dice_kept: np.ndarray) -> tuple[float | None, float]:
    """The cut on P(empty) whose emptied images (``p >= cut``) give the best mean Dice (None
    when emptying none is best), and that Dice. Emptying scores 1 if empty, else 0."""
    n = len(p_empty)
    order = np.argsort(-p_empty, kind="stable")
    p = p_empty[order]
    gain = np.concatenate([[0.0], np.cumsum(is_empty[order] - dice_kept[order])])
    valid = np.ones(n + 1, dtype=bool)
    valid[1:-1] = p[:-1] > p[1:]  # a cut can only fall between distinct probabilities
    gain[~valid] = -np.inf
    j = int(np.argmax(gain))  # the first best: the fewest images emptied
    if gain[j] <= 1e-12:
        return None, float(dice_kept.mean())
    cut = p[j - 1] if j == n else (p[j - 1] + p[j]) / 2
    return float(cut), float((dice_kept.sum() + gain[j]) / n)


def _inner_labels(n: int, folds: np.ndarray | None, inner_folds: int,
                  seed: int) -> np.ndarray | None:
    """Fold labels for the classifier's inner OOF: the given folds if there are two or more,
    else a seeded k-fold split; None when there are too few rows to split."""
    if folds is not None and len(np.unique(folds)) >= 2:
        return np.asarray(folds)
    k = min(inner_folds, n)
    if k < 2:
        return None
    labels = np.empty(n, dtype=np.int64)
    labels[np.random.default_rng(seed).permutation(n)] = np.arange(n) % k
    return labels


# ---------------------------------------------------------------------------- fit / apply


def _fit_rows(oof: _Oof, rows: np.ndarray, inner: np.ndarray | None, use_classifier: bool,
              classifier_params: dict[str, Any] | None, inner_folds: int,
              seed: int, min_gain: float = MIN_GAIN) -> dict[str, Any]:
    """Threshold, min area and empty cut on ``rows``, or the defaults when the fit beats
    them by less than ``min_gain`` Dice there (see :data:`MIN_GAIN`)."""
    params = _fit_rows_unguarded(oof, rows, inner, use_classifier, classifier_params,
                                 inner_folds, seed)
    if params["dice"] - params["dice_default"] >= min_gain:
        return {**params, "kept_defaults": False}
    return {**params, "threshold": DEFAULT_THRESHOLD, "min_area": 0, "empty_threshold": None,
            "empty_classifier": None, "dice": params["dice_default"], "kept_defaults": True}


def _fit_rows_unguarded(oof: _Oof, rows: np.ndarray, inner: np.ndarray | None,
                        use_classifier: bool, classifier_params: dict[str, Any] | None,
                        inner_folds: int, seed: int) -> dict[str, Any]:
    """Threshold, min area and empty cut on ``rows``. The cut is chosen on the classifier's
    inner-OOF probabilities (in-sample ones would be overconfident); the classifier that is
    kept is then refitted on all of ``rows``."""
    alone = oof.fit_grid(rows)
    params: dict[str, Any] = {
        "threshold": alone["threshold"], "min_area": alone["min_area"],
        "empty_threshold": None, "empty_classifier": None,
        "dice_default": alone["dice_default"], "dice_no_classifier": alone["dice"],
        "dice": alone["dice"], "n_images": int(rows.sum()),
    }
    index = np.flatnonzero(rows)
    labels = _inner_labels(len(index), inner, inner_folds, seed)
    if not use_classifier or labels is None:
        return params
    stats = oof.stats.iloc[index].reset_index(drop=True)
    is_empty = oof.is_empty[index]
    p_empty = np.empty(len(index))
    for j in np.unique(labels):
        held = labels == j
        model = EmptyMaskClassifier(classifier_params, seed).fit(stats[~held], is_empty[~held])
        p_empty[held] = model.predict_proba(stats[held])
    joint = oof.fit_grid(rows, p_empty)
    if joint["empty_threshold"] is None or joint["dice"] <= alone["dice"] + 1e-12:
        return params
    model = EmptyMaskClassifier(classifier_params, seed).fit(stats, is_empty)
    params.update(threshold=joint["threshold"], min_area=joint["min_area"],
                  empty_threshold=joint["empty_threshold"],
                  empty_classifier=model.fitted_params(), dice=joint["dice"])
    return params


def fit_postprocess(probs: np.ndarray, masks: np.ndarray, *,
                    thresholds: Sequence[float] | None = None,
                    min_areas: Sequence[int] | None = None, use_classifier: bool = True,
                    classifier_params: dict[str, Any] | None = None,
                    folds: np.ndarray | None = None, inner_folds: int = 3,
                    seed: int = 0, min_gain: float = MIN_GAIN) -> dict[str, Any]:
    """Post-processing fitted on every OOF image, for :func:`apply_postprocess` on test.

    Returns JSON: ``threshold``, ``min_area``, ``empty_threshold`` (None: never empty an
    image), ``empty_classifier`` (:meth:`EmptyMaskClassifier.fitted_params` or None) and the
    fitted images' Dice at the default, with the best threshold and min area alone, and with
    all three (``dice_default``, ``dice_no_classifier``, ``dice``: optimistic, being fitted on
    those images). The classifier is kept only if it raises that Dice. Its cut is chosen,
    jointly with the threshold and min area, on inner-OOF probabilities over ``folds`` (the
    level-1 folds, so groups stay together) or, without them, a seeded ``inner_folds``
    split. ``use_classifier=False`` fits the threshold and min area only."""
    oof = _Oof(probs, masks, thresholds, min_areas)
    rows = np.ones(len(oof.probs), dtype=bool)
    if folds is not None:
        folds = np.asarray(folds).reshape(-1)
        if len(folds) != len(rows):
            raise PodiumInputError(f"got {len(folds)} fold labels for {len(rows)} images.")
    return _fit_rows(oof, rows, folds, use_classifier, classifier_params, inner_folds, seed,
                     min_gain)


def _apply(stack: np.ndarray, params: dict[str, Any],
           stats: pd.DataFrame | None = None) -> np.ndarray:
    masks = apply_threshold_min_area(stack, params["threshold"], params["min_area"])
    if params.get("empty_classifier") is not None and params.get("empty_threshold") is not None:
        model = EmptyMaskClassifier.from_params(params["empty_classifier"])
        p_empty = model.predict_proba(mask_statistics(stack) if stats is None else stats)
        masks[p_empty >= params["empty_threshold"]] = 0
    return masks


def apply_postprocess(probs: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """uint8 masks (the input's shape) from probabilities and :func:`fit_postprocess` params."""
    stack, single = prob_stack(probs)
    masks = _apply(stack, params)
    return masks[0] if single else masks


def fit_postprocess_fold_by_fold(
    probs: np.ndarray, masks: np.ndarray, folds: np.ndarray, *,
    thresholds: Sequence[float] | None = None, min_areas: Sequence[int] | None = None,
    use_classifier: bool = True, classifier_params: dict[str, Any] | None = None,
    inner_folds: int = 3, seed: int = 0, min_gain: float = MIN_GAIN, fit_all: bool = False,
) -> tuple[np.ndarray, dict[str, Any]]:
    """OOF masks where fold k's come from post-processing fitted on the other folds only.

    Returns the ``(N, H, W)`` uint8 masks and a report: ``folds`` (each fold's fitted params,
    as :func:`fit_postprocess` gives them, with ``fold`` and that fold's Dice before and
    after) and the overall OOF ``dice_before`` (threshold 0.5, nothing removed) and
    ``dice_after``. Fold k's masks never depend on fold k's truth, so ``dice_after`` is an
    honest estimate of what the test-time post-processing adds. ``fit_all`` adds ``fitted``,
    what :func:`fit_postprocess` with these ``folds`` gives, from the same component tables."""
    oof = _Oof(probs, masks, thresholds, min_areas)
    folds = np.asarray(folds).reshape(-1)
    if len(folds) != len(oof.probs):
        raise PodiumInputError(f"got {len(folds)} fold labels for {len(oof.probs)} images.")
    before = oof.dice_at(DEFAULT_THRESHOLD, 0)

    def fit(train: np.ndarray) -> dict[str, Any]:
        return _fit_rows(oof, train, folds[train], use_classifier, classifier_params,
                         inner_folds, seed, min_gain)

    def apply(params: dict[str, Any], held: np.ndarray) -> np.ndarray:
        stats = (oof.stats.iloc[np.flatnonzero(held)].reset_index(drop=True)
                 if params["empty_threshold"] is not None else None)
        return _apply(oof.probs[held], params, stats)

    out, fits = cross_fit(folds, fit, apply, what="fold-by-fold post-processing")
    out = out.astype(np.uint8, copy=False)
    report = [{"fold": f.fold, **f.fitted,
               "dice_fold_before": float(before[f.held].mean()),
               "dice_fold_after": float(image_dice(out[f.held], oof.truth[f.held]).mean())}
              for f in fits]
    after = image_dice(out, oof.truth)
    summary = {"folds": report, "dice_before": float(before.mean()),
               "dice_after": float(after.mean())}
    if fit_all:
        summary["fitted"] = _fit_rows(oof, np.ones(len(folds), dtype=bool), folds,
                                      use_classifier, classifier_params, inner_folds, seed,
                                      min_gain)
    return out, summary


# ---------------------------------------------------------------------------- instances


def watershed_instances(prob: np.ndarray, threshold: float = 0.5, min_distance: int = 3,
                        min_area: int = 0, *, core_threshold: float | None = None) -> np.ndarray:
    """Split touching objects of one ``(H, W)`` probability map into instances (the DSB 2018
    recipe); an int32 label image, 0 background and 1..n instances.

    Markers are the distance transform's local maxima at least ``min_distance`` apart
    (adjacent maxima of a plateau merged into one), or, with ``core_threshold``, the
    components of ``prob >= core_threshold`` (a confident core per object); watershed then
    floods the foreground from them. A foreground component without a marker becomes one
    instance; instances under ``min_area`` pixels are dropped and the rest renumbered."""
    try:
        from skimage.feature import peak_local_max
        from skimage.segmentation import relabel_sequential, watershed
    except ImportError as err:  # scikit-image is only in the bench extra so far
        raise PodiumInputError("watershed_instances needs scikit-image: "
                               "pip install 'scikit-image>=0.26'.") from err
    from scipy import ndimage as ndi

    stack, single = prob_stack(prob)
    if not single:
        raise PodiumInputError(f"watershed_instances takes one (H, W) map, got {stack.shape}.")
    image = stack[0]
    threshold = check_threshold(threshold)
    min_area = check_min_area(min_area)
    if isinstance(min_distance, bool) or not isinstance(min_distance, int) or min_distance < 1:
        raise PodiumInputError(f"min_distance must be an integer >= 1, got {min_distance!r}.")
    eight = np.ones((3, 3), dtype=bool)
    binary = image >= threshold
    components, _ = ndi.label(binary, structure=eight)
    if core_threshold is not None:
        core = binary & (image >= check_threshold(core_threshold))
        markers, _ = ndi.label(core, structure=eight)
        surface = -image
    else:
        distance = ndi.distance_transform_edt(binary)
        peaks = np.zeros(binary.shape, dtype=bool)
        coords = peak_local_max(distance, min_distance=min_distance, labels=components,
                                exclude_border=False)
        peaks[tuple(coords.T)] = True
        markers, _ = ndi.label(peaks, structure=eight)
        surface = -distance
    n_markers = int(markers.max())
    marked = np.zeros(int(components.max()) + 1, dtype=bool)
    marked[components[markers > 0]] = True
    unmarked = np.flatnonzero(~marked[1:]) + 1
    extra = np.zeros(len(marked), dtype=np.int64)
    extra[unmarked] = n_markers + 1 + np.arange(len(unmarked))
    markers = np.where(markers > 0, markers, np.where(binary, extra[components], 0))
    labels = watershed(surface, markers, mask=binary)
    if min_area > 1:
        area = np.bincount(labels.ravel())
        small = area < min_area
        small[0] = False
        labels[small[labels]] = 0
    return relabel_sequential(labels)[0].astype(np.int32)
