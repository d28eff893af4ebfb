"""Leak-free folds: stratified by label, grouped so that neither a duplicate cluster nor a
user group (e.g. a patient) spans two folds."""

from __future__ import annotations

import logging

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
    for k, (_, valid) in enumerate(splitter.split(np.zeros(len(ids)), labels, groups)):
        fold[valid] = k
    folds = pd.DataFrame({"id": ids.to_numpy(), "fold": fold})
    log.info("fold sizes: %s", folds["fold"].value_counts().sort_index().tolist())
    return folds


def assign_folds(
    manifest: pd.DataFrame, clusters: pd.DataFrame, excluded: set[str], labels: np.ndarray,
    n_folds: int, seed: int,
) -> pd.DataFrame:
    """``id, fold`` for the train images dedup keeps: validated images get folds grouped by
    cluster and user group; train-only (external) images get fold -1, trained on in every
    fold and never validated, so CV stays comparable.

    ``labels`` are the encoded labels of the manifest's train rows, in manifest order."""
    is_train = (manifest["split"] == "train").to_numpy()
    train = manifest[is_train].assign(y=labels)
    train = train[~train["id"].isin(excluded)]
    validated = train[~train["train_only"].astype(bool)]
    cluster_of = clusters.set_index("id")["cluster"]
    groups = [cluster_of.loc[validated["id"]].to_numpy()]
    if "group" in validated.columns:
        groups.append(validated["group"].to_numpy())
    folds = make_folds(validated["id"], validated["y"].to_numpy(), combine_groups(*groups),
                       n_folds, seed)
    train_only = pd.DataFrame({"id": train.loc[train["train_only"].astype(bool), "id"],
                               "fold": -1})
    log.info("%d images left out by dedup; %d train-only images get fold -1",
             len(excluded), len(train_only))
    return pd.concat([folds, train_only], ignore_index=True)
