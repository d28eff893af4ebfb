"""Duplicate images: clusters of identical or near-identical images, and the pairs that link
them.

Duplicates across folds leak labels into validation, and duplicates across train and test
leak them into the leaderboard. Exact duplicates share a file hash (or a decoded-pixel hash,
when ingest recorded one); near duplicates come from :mod:`podium.data.neardup`. All pairs
are joined into clusters (connected components), which folds keep together.
"""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from podium.data.neardup import (
    NearDuplicateSettings,
    compute_signatures,
    find_near_duplicates,
)

log = logging.getLogger(__name__)

PAIR_COLUMNS = ["id_a", "id_b", "kind", "score"]
EXACT_KEYS = (("md5", "exact"), ("pixel_md5", "pixel"))


def exact_pairs(manifest: pd.DataFrame) -> pd.DataFrame:
    """Every pair of images with identical bytes (``exact``) or identical decoded pixels
    (``pixel``, only for pairs whose bytes differ)."""
    rows = []
    for column, kind in EXACT_KEYS:
        if column not in manifest.columns:
            continue
        shared = manifest[manifest.duplicated(column, keep=False)]  # only groups of 2+
        for _, group in shared.groupby(column, sort=False):
            for a, b in itertools.combinations(group.itertuples(index=False), 2):
                if kind == "pixel" and a.md5 == b.md5:
                    continue
                rows.append((a.id, b.id, kind, 1.0))
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


def cluster_pairs(manifest: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """``id, cluster, split``: connected components of the pairs; singletons get their own
    cluster; clusters are numbered in manifest order of their first member."""
    position = pd.Series(np.arange(len(manifest)), index=manifest["id"].to_numpy())
    a = position.loc[pairs["id_a"]].to_numpy()
    b = position.loc[pairs["id_b"]].to_numpy()
    graph = coo_matrix((np.ones(len(a)), (a, b)), shape=(len(manifest), len(manifest)))
    _, component = connected_components(graph, directed=False)
    _, first_seen = np.unique(component, return_index=True)
    renumber = np.empty(len(first_seen), dtype=np.int64)
    renumber[np.argsort(np.argsort(first_seen))] = np.arange(len(first_seen))
    return pd.DataFrame({
        "id": manifest["id"].to_numpy(),
        "cluster": renumber[component],
        "split": manifest["split"].to_numpy(),
    })


def exact_duplicates(manifest: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clusters and pairs of exact duplicates alone."""
    pairs = exact_pairs(manifest)
    clusters = cluster_pairs(manifest, pairs)
    log.info("exact duplicates: %d pairs in %d clusters of %d images",
             len(pairs), clusters["cluster"].nunique(), len(clusters))
    return clusters, pairs


def label_conflicts(clusters: pd.DataFrame, manifest: pd.DataFrame, target: str
                    ) -> pd.DataFrame:
    """``cluster, id, label`` of train images in clusters whose train labels disagree."""
    train = clusters.merge(manifest[["id", target]], on="id")
    train = train[train["split"] == "train"]
    disagree = train.groupby("cluster")[target].transform("nunique") > 1
    return (train.loc[disagree, ["cluster", "id", target]]
            .rename(columns={target: "label"}).reset_index(drop=True))


def leaked_test_images(clusters: pd.DataFrame, manifest: pd.DataFrame, target: str) -> pd.DataFrame:
    """``test_id, cluster, n_train, train_label, label_conflict`` for every test image that
    shares a cluster with train images; ``train_label`` is the cluster's majority label."""
    frame = clusters.merge(manifest[["id", target]], on="id")
    train = frame[frame["split"] == "train"]
    test = frame[frame["split"] == "test"]
    summary = train.groupby("cluster")[target].agg(
        n_train="size",
        train_label=lambda labels: labels.value_counts().index[0],
        label_conflict=lambda labels: labels.nunique() > 1,
    )
    leaks = test[["id", "cluster"]].merge(summary, left_on="cluster", right_index=True)
    return leaks.rename(columns={"id": "test_id"}).reset_index(drop=True)


def find_duplicates(
    manifest: pd.DataFrame, near: NearDuplicateSettings | None, threads: int = 1
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Exact pairs, then (unless ``near`` is None) confirmed near pairs between images whose
    bytes differ; returns ``clusters`` and ``pairs`` sorted by kind and descending score."""
    pairs = [exact_pairs(manifest)]
    if near is not None:
        signatures = compute_signatures(manifest, near.flip_invariant, threads)
        found = find_near_duplicates(manifest["id"].to_numpy(), signatures, near, threads)
        md5 = manifest.set_index("id")["md5"]
        same_bytes = md5.loc[found["id_a"]].to_numpy() == md5.loc[found["id_b"]].to_numpy()
        pairs.append(found[~same_bytes])
    all_pairs = pd.concat(pairs, ignore_index=True)
    all_pairs = all_pairs.sort_values(["kind", "score"], ascending=[True, False],
                                      kind="stable").reset_index(drop=True)
    clusters = cluster_pairs(manifest, all_pairs)
    sizes = clusters["cluster"].value_counts()
    log.info("duplicates: %s pairs; %d clusters with more than one image (largest %d)",
             all_pairs["kind"].value_counts().to_dict(), int((sizes > 1).sum()),
             int(sizes.max()) if len(sizes) else 0)
    return clusters, all_pairs


KIND_ORDER = {"exact": 0, "pixel": 1, "near": 2}


def attach_test_images(manifest: pd.DataFrame, train_clusters: pd.DataFrame,
                       pairs: pd.DataFrame) -> pd.DataFrame:
    """``id, cluster, split`` for the whole manifest, whose train part is ``train_clusters``
    unchanged.

    Folds are made from train-only clusters, so adding test images can never move a train
    image to another fold. A group of test images linked by their own pairs joins the train
    cluster of its strongest pair with a train image (exact before pixel before near, then by
    score); a group with no train partner becomes a cluster of its own. A test image never
    merges two train clusters."""
    split = manifest.set_index("id")["split"]
    train_ids = manifest.loc[split.to_numpy() == "train", "id"]
    if set(train_ids) != set(train_clusters["id"]):
        raise ValueError("train clusters and manifest disagree on the train ids; rerun dedup")
    test = manifest[manifest["split"] == "test"]
    if test.empty:
        return train_clusters[["id", "cluster", "split"]].reset_index(drop=True)
    a_test = pairs["id_a"].map(split).eq("test").to_numpy()
    b_test = pairs["id_b"].map(split).eq("test").to_numpy()
    groups = cluster_pairs(test, pairs[a_test & b_test]).set_index("id")["cluster"]
    cross = pairs[a_test ^ b_test]
    cross = pd.DataFrame({
        "test_id": np.where(a_test[a_test ^ b_test], cross["id_a"], cross["id_b"]),
        "train_id": np.where(a_test[a_test ^ b_test], cross["id_b"], cross["id_a"]),
        "rank": cross["kind"].map(KIND_ORDER).to_numpy(),
        "score": cross["score"].to_numpy(),
    })
    cross["group"] = cross["test_id"].map(groups)
    cross["cluster"] = cross["train_id"].map(train_clusters.set_index("id")["cluster"])
    best = (cross.sort_values(["rank", "score"], ascending=[True, False], kind="stable")
            .drop_duplicates("group").set_index("group")["cluster"])
    first_new = int(train_clusters["cluster"].max()) + 1 if len(train_clusters) else 0
    unmatched = [g for g in pd.unique(groups.to_numpy()) if g not in best.index]
    cluster_of_group = pd.concat([best, pd.Series(
        np.arange(first_new, first_new + len(unmatched)), index=unmatched)])
    test_clusters = pd.DataFrame({"id": test["id"].to_numpy(), "split": "test",
                                  "cluster": groups.loc[test["id"]].map(cluster_of_group)
                                  .to_numpy(dtype=np.int64)})
    whole = pd.concat([train_clusters, test_clusters], ignore_index=True)
    order = pd.Series(np.arange(len(manifest)), index=manifest["id"].to_numpy())
    whole = whole.iloc[np.argsort(order.loc[whole["id"]].to_numpy(), kind="stable")]
    return whole[["id", "cluster", "split"]].reset_index(drop=True)


def pairs_with_test(manifest: pd.DataFrame, all_pairs: pd.DataFrame,
                    train_pairs: pd.DataFrame) -> pd.DataFrame:
    """The train side's pairs plus every pair that involves a test image, in the usual order
    (kind, then descending score)."""
    split = manifest.set_index("id")["split"]
    touches_test = (all_pairs["id_a"].map(split).eq("test")
                    | all_pairs["id_b"].map(split).eq("test"))
    pairs = pd.concat([train_pairs, all_pairs[touches_test.to_numpy()]], ignore_index=True)
    return pairs.sort_values(["kind", "score"], ascending=[True, False],
                             kind="stable").reset_index(drop=True)


DROP_POLICIES = ("exact", "conflicts")


def excluded_train_ids(
    clusters: pd.DataFrame, pairs: pd.DataFrame, conflicts: pd.DataFrame, drop: list[str]
) -> pd.DataFrame:
    """``id, reason`` of train images left out of training by the ``dedup.drop`` policy.

    ``exact`` keeps the first image (manifest order) of every group of byte- or
    pixel-identical train images; ``conflicts`` drops every train image of a cluster whose
    labels disagree (the label cannot be trusted).
    """
    unknown = set(drop) - set(DROP_POLICIES)
    if unknown:
        raise ValueError(f"unknown dedup.drop policies {sorted(unknown)}")
    rows = []
    if "exact" in drop:
        train = set(clusters.loc[clusters["split"] == "train", "id"])
        exact = pairs[pairs["kind"].isin(["exact", "pixel"])]
        exact = exact[exact["id_a"].isin(train) & exact["id_b"].isin(train)]
        order = {image_id: k for k, image_id in enumerate(clusters["id"])}
        keepers = cluster_pairs(clusters[clusters["id"].isin(train)], exact)
        keepers["order"] = keepers["id"].map(order)
        first = keepers.groupby("cluster")["order"].transform("min")
        rows += [(i, "exact duplicate") for i in keepers.loc[keepers["order"] != first, "id"]]
    if "conflicts" in drop:
        rows += [(i, "conflicting labels") for i in conflicts["id"]]
    frame = pd.DataFrame(rows, columns=["id", "reason"])
    return frame.drop_duplicates("id").reset_index(drop=True)


def external_duplicates(clusters: pd.DataFrame, manifest: pd.DataFrame) -> pd.DataFrame:
    """``id, reason`` of train-only external images that duplicate a competition train image.

    A train-only image trains every fold's model; if its duplicate is validated in fold k, the
    fold-k score would see its label. Such images add nothing new, so they are left out."""
    frame = clusters.merge(manifest[["id", "source", "train_only"]], on="id")
    competition_train = frame[(frame["split"] == "train") & ~frame["train_only"]]
    leaking = frame["train_only"] & frame["cluster"].isin(competition_train["cluster"])
    return pd.DataFrame({"id": frame.loc[leaking, "id"].to_numpy(),
                         "reason": "external duplicate of a validated train image"})
