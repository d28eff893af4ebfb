"""Leak-free folds: stratified by label (by quantile bin for continuous targets), grouped so
that neither a duplicate cluster nor a user group (e.g. a patient) spans two folds."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from sklearn.model_selection import StratifiedGroupKFold

from podium.errors import PodiumInputError

log = logging.getLogger(__name__)


def combine_groups(*labels: np.ndarray) -> np.ndarray:
    """One group id per row such that rows sharing any label (a duplicate cluster, a patient)
    share a group: connected components of rows linked through their labels."""
    n = len(labels[0])
    rows, columns, offset = [], [], n
    for label in labels:
        codes, uniques = pd.factorize(pd.Series(label), use_na_sentinel=True)
        linked = codes >= 0  # a missing label links a row to nothing
        rows.append(np.flatnonzero(linked))
        columns.append(codes[linked] + offset)
        offset += len(uniques)
    row = np.concatenate(rows)
    column = np.concatenate(columns)
    graph = coo_matrix((np.ones(len(row)), (row, column)), shape=(offset, offset))
    _, component = connected_components(graph, directed=False)
    return pd.factorize(component[:n])[0]


def stratification_labels(labels: np.ndarray, bins: int = 10) -> np.ndarray:
    """What the folds stratify on: class indices as they are, whole-number grades as
    classes, and continuous targets as their quantile bins (so every fold spans the range)."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.floating):
        return labels
    if np.all(labels == np.round(labels)) and len(np.unique(labels)) <= 50:
        return labels.astype(np.int64)
    return pd.qcut(labels, q=bins, labels=False, duplicates="drop").astype(np.int64)


def thin_classes_warning(labels: np.ndarray, classes: Sequence[str], n_folds: int
                         ) -> str | None:
    """Classes with fewer images than folds, in words (None if there are none): such a class
    is missing from some validation folds, so its per-fold scores and the fold-by-fold
    thresholds are unreliable. ``labels`` are class indices or a 0/1 multilabel matrix."""
    labels = np.asarray(labels)
    if labels.ndim == 1 and np.issubdtype(labels.dtype, np.floating):  # ordinal grades
        index = {float(c): i for i, c in enumerate(classes)}
        labels = np.array([index.get(float(v), -1) for v in labels], dtype=np.int64)
        labels = labels[labels >= 0]
    counts = (labels.sum(axis=0) if labels.ndim == 2
              else np.bincount(labels.astype(np.int64), minlength=len(classes)))
    thin = [(c, int(n)) for c, n in zip(classes, counts, strict=False) if n < n_folds]
    if not thin:
        return None
    listed = ", ".join(f"{c!r} ({n})" for c, n in thin[:10])
    more = f" and {len(thin) - 10} more" if len(thin) > 10 else ""
    return (f"{len(thin)} class(es) have fewer train images than the {n_folds} folds "
            f"(folds.n_folds), so some validation folds hold none of them: {listed}{more} "
            "images; their per-fold scores are unreliable: use fewer folds or add images")


def make_folds(
    ids: pd.Series, labels: np.ndarray, groups: np.ndarray, n_folds: int, seed: int
) -> pd.DataFrame:
    """Assign every train image a fold in ``0..n_folds-1`` (``id, fold``)."""
    n_groups = len(np.unique(groups))
    if n_folds < 2 or n_folds > n_groups:
        raise PodiumInputError(
            f"config key folds.n_folds: {n_folds} folds need 2 or more and at most the "
            f"{n_groups} independent image groups of train (each duplicate cluster in "
            "dedup/clusters.csv is one group: if dedup merged too much, raise "
            "dedup.min_correlation or look at dedup/montage.png)."
        )
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    fold = np.full(len(ids), -1, dtype=np.int64)
    strata = stratification_labels(labels)
    for k, (_, valid) in enumerate(splitter.split(np.zeros(len(ids)), strata, groups)):
        fold[valid] = k
    folds = pd.DataFrame({"id": ids.to_numpy(), "fold": fold})
    log.info("fold sizes: %s", folds["fold"].value_counts().sort_index().tolist())
    return folds


def assign_folds(
    manifest: pd.DataFrame, clusters: pd.DataFrame, excluded: set[str], labels: np.ndarray,
    n_folds: int, seed: int, classes: Sequence[str] | None = None,
) -> pd.DataFrame:
    """``id, fold`` for the train images dedup keeps: validated images get folds grouped by
    cluster and user group; train-only (external) images get fold -1, trained on in every
    fold and never validated, so CV stays comparable.

    ``labels`` are the encoded labels of the manifest's train rows, in manifest order: class
    indices (stratified k-fold) or a 0/1 matrix for multilabel (iterative stratification).
    With ``classes`` (their names), classes with fewer validated images than folds are
    logged as a warning."""
    is_train = (manifest["split"] == "train").to_numpy()
    train = manifest[is_train].reset_index(drop=True)
    kept = ~train["id"].isin(excluded).to_numpy()
    validated = kept & ~train["train_only"].astype(bool).to_numpy()
    cluster_of = clusters.set_index("id")["cluster"]
    groups = [cluster_of.loc[train.loc[validated, "id"]].to_numpy()]
    if "group" in train.columns:
        groups.append(train.loc[validated, "group"].to_numpy())
    if classes is not None:
        warning = thin_classes_warning(labels[validated], classes, n_folds)
        if warning:
            log.warning(warning)
    split = make_multilabel_folds if labels.ndim == 2 else make_folds
    folds = split(train.loc[validated, "id"], labels[validated], combine_groups(*groups),
                  n_folds, seed)
    train = train[kept]
    train_only = pd.DataFrame({"id": train.loc[train["train_only"].astype(bool), "id"],
                               "fold": -1})
    log.info("%d images left out by dedup; %d train-only images get fold -1",
             len(excluded), len(train_only))
    return pd.concat([folds, train_only], ignore_index=True)


def make_multilabel_folds(
    ids: pd.Series, labels: np.ndarray, groups: np.ndarray, n_folds: int, seed: int
) -> pd.DataFrame:
    """``id, fold`` for multilabel targets (``labels`` is an ``n x L`` 0/1 matrix): iterative
    stratification (Sechidis et al. 2011) over whole groups, so each fold gets its share of
    every label, rarest labels first, and no group spans two folds."""
    group_codes, _ = pd.factorize(pd.Series(groups))
    n_groups = int(group_codes.max()) + 1
    if n_folds < 2 or n_folds > n_groups:
        raise PodiumInputError(
            f"config key folds.n_folds: {n_folds} folds need 2 or more and at most the "
            f"{n_groups} independent image groups of train."
        )
    rng = np.random.default_rng(seed)
    counts = np.zeros((n_groups, labels.shape[1]))
    np.add.at(counts, group_codes, np.asarray(labels, dtype=float))
    sizes = np.bincount(group_codes, minlength=n_groups).astype(float)
    want_labels = np.tile(counts.sum(axis=0) / n_folds, (n_folds, 1))
    want_size = np.full(n_folds, sizes.sum() / n_folds)
    fold_of_group = np.full(n_groups, -1)
    remaining = counts.copy()
    for _ in range(n_groups):
        open_groups = fold_of_group < 0
        if not open_groups.any():
            break
        totals = remaining[open_groups].sum(axis=0)
        if totals.sum() > 0:  # the rarest label still to place decides the next group
            label = int(np.argmin(np.where(totals > 0, totals, np.inf)))
            candidates = np.flatnonzero(open_groups & (remaining[:, label] > 0))
            desire = want_labels[:, label]
        else:  # groups without labels fill the folds that lack images
            candidates = np.flatnonzero(open_groups)
            desire = want_size
        group = candidates[rng.integers(len(candidates))]
        fold = int(np.lexsort((rng.random(n_folds), want_size, desire))[-1])
        fold_of_group[group] = fold
        want_labels[fold] -= counts[group]
        want_size[fold] -= sizes[group]
        remaining[group] = 0
    return pd.DataFrame({"id": ids.to_numpy(), "fold": fold_of_group[group_codes]})
