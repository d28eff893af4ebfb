"""Duplicate images: clusters of identical files, and the pairs that link them.

Duplicates across folds leak labels into validation, and duplicates across train and test
leak them into the leaderboard. This first version finds exact duplicates by file hash; the
contract (``clusters.csv`` and ``pairs.csv``) is the one near-duplicate search will fill too.
"""

from __future__ import annotations

import itertools
import logging

import pandas as pd

log = logging.getLogger(__name__)

PAIR_COLUMNS = ["id_a", "id_b", "kind", "score"]


def exact_duplicates(manifest: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cluster images with identical bytes.

    Returns ``clusters`` (``id, cluster, split``; singletons get their own cluster, numbered in
    manifest order) and ``pairs`` (``id_a, id_b, kind, score`` for every pair in a cluster).
    """
    cluster_of_hash = {h: i for i, h in enumerate(pd.unique(manifest["md5"]))}
    clusters = pd.DataFrame({
        "id": manifest["id"].to_numpy(),
        "cluster": manifest["md5"].map(cluster_of_hash).to_numpy(),
        "split": manifest["split"].to_numpy(),
    })
    pairs = [
        (a, b, "exact", 1.0)
        for _, members in clusters.groupby("cluster", sort=True)["id"]
        if len(members) > 1
        for a, b in itertools.combinations(members.tolist(), 2)
    ]
    pairs_frame = pd.DataFrame(pairs, columns=PAIR_COLUMNS)
    log.info("exact duplicates: %d pairs in %d clusters of %d images",
             len(pairs_frame), clusters["cluster"].nunique(), len(clusters))
    return clusters, pairs_frame
