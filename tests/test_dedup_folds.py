"""Exact-duplicate clusters and the leak-free folds built on them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from podium.data.dedup import PAIR_COLUMNS, exact_duplicates
from podium.data.folds import make_folds
from podium.errors import PodiumInputError


def manifest(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["id", "split", "md5"])


# --- exact_duplicates -------------------------------------------------------------------------


def test_identical_hashes_share_a_cluster_and_singletons_get_their_own() -> None:
    clusters, _ = exact_duplicates(manifest([
        ("a", "train", "h1"),
        ("b", "train", "h2"),
        ("c", "train", "h1"),
        ("d", "train", "h3"),
        ("e", "test", "h2"),
        ("f", "test", "h1"),
    ]))
    assert list(clusters.columns) == ["id", "cluster", "split"]
    assert clusters["id"].tolist() == ["a", "b", "c", "d", "e", "f"]
    assert clusters["split"].tolist() == ["train"] * 4 + ["test"] * 2
    # Numbered in manifest order of each hash's first appearance.
    assert clusters["cluster"].tolist() == [0, 1, 0, 2, 1, 0]


def test_pairs_cover_every_pair_in_a_cluster() -> None:
    _, pairs = exact_duplicates(manifest([
        ("a", "train", "h1"),
        ("b", "train", "h2"),
        ("c", "train", "h1"),
        ("d", "train", "h3"),
        ("e", "train", "h1"),
    ]))
    assert list(pairs.columns) == PAIR_COLUMNS
    assert set(zip(pairs.id_a, pairs.id_b, strict=True)) == {("a", "c"), ("a", "e"), ("c", "e")}
    assert (pairs["kind"] == "exact").all()
    assert (pairs["score"] == 1.0).all()
    # The singletons b and d take part in no pair.
    assert not {"b", "d"} & (set(pairs.id_a) | set(pairs.id_b))


def test_train_test_duplicate_pair_is_reported() -> None:
    clusters, pairs = exact_duplicates(manifest([
        ("tr1", "train", "x"),
        ("tr2", "train", "y"),
        ("te1", "test", "z"),
        ("te2", "test", "y"),
    ]))
    assert pairs[["id_a", "id_b", "kind"]].values.tolist() == [["tr2", "te2", "exact"]]
    linked = clusters.set_index("id")["cluster"]
    assert linked["tr2"] == linked["te2"]
    assert clusters["cluster"].nunique() == 3


def test_no_duplicates_gives_empty_pairs_with_columns() -> None:
    clusters, pairs = exact_duplicates(manifest([
        ("a", "train", "h1"), ("b", "train", "h2"), ("c", "test", "h3"),
    ]))
    assert clusters["cluster"].tolist() == [0, 1, 2]
    assert pairs.empty
    assert list(pairs.columns) == PAIR_COLUMNS


# --- make_folds -------------------------------------------------------------------------------


def grouped_dataset(n_groups: int = 24, n_classes: int = 3, seed: int = 0
                    ) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Groups of 1 to 4 duplicates; each group has one label, classes cycle over groups."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 5, size=n_groups)
    groups = np.repeat(np.arange(n_groups), sizes)
    labels = np.repeat(np.arange(n_groups) % n_classes, sizes)
    order = rng.permutation(len(groups))  # members of a group are not adjacent
    groups, labels = groups[order], labels[order]
    ids = pd.Series([f"img_{i:03d}" for i in range(len(groups))])
    return ids, labels, groups


@pytest.mark.parametrize("n_folds", [2, 4, 5])
def test_every_cluster_lies_in_exactly_one_fold(n_folds: int) -> None:
    ids, labels, groups = grouped_dataset()
    folds = make_folds(ids, labels, groups, n_folds=n_folds, seed=3)
    assert list(folds.columns) == ["id", "fold"]
    assert folds["id"].tolist() == ids.tolist()
    assert set(folds["fold"]) == set(range(n_folds))
    per_group = pd.Series(folds["fold"].to_numpy()).groupby(groups).nunique()
    assert len(per_group) == len(np.unique(groups))
    assert (per_group == 1).all()
    assert (pd.Series(groups).value_counts() > 1).sum() > 5  # real multi-member clusters


def test_each_fold_has_every_class() -> None:
    ids, labels, groups = grouped_dataset(n_groups=30, n_classes=3)
    folds = make_folds(ids, labels, groups, n_folds=5, seed=0)
    for k in range(5):
        assert set(labels[folds["fold"].to_numpy() == k]) == {0, 1, 2}


def test_folds_are_deterministic_for_a_seed() -> None:
    ids, labels, groups = grouped_dataset()
    first = make_folds(ids, labels, groups, n_folds=4, seed=7)
    again = make_folds(ids, labels, groups, n_folds=4, seed=7)
    pd.testing.assert_frame_equal(first, again)
    others = [make_folds(ids, labels, groups, n_folds=4, seed=s)["fold"] for s in range(1, 6)]
    assert any(not other.equals(first["fold"]) for other in others)


@pytest.mark.filterwarnings("ignore:The least populated class")
def test_more_folds_than_groups_is_refused() -> None:
    ids = pd.Series([f"img_{i}" for i in range(10)])
    groups = np.repeat(np.arange(5), 2)  # 10 images but only 5 independent groups
    labels = groups % 2
    with pytest.raises(PodiumInputError, match=r"folds\.n_folds.*5 independent image groups"):
        make_folds(ids, labels, groups, n_folds=6, seed=0)
    folds = make_folds(ids, labels, groups, n_folds=5, seed=0)
    assert folds["fold"].nunique() == 5


def test_fewer_than_two_folds_is_refused() -> None:
    ids, labels, groups = grouped_dataset()
    with pytest.raises(PodiumInputError, match=r"folds\.n_folds"):
        make_folds(ids, labels, groups, n_folds=1, seed=0)


def test_combine_groups_links_clusters_and_user_groups() -> None:
    from podium.data.folds import combine_groups

    clusters = np.array([0, 0, 1, 2, 3, 4])
    patients = np.array(["p1", None, "p1", "p2", "p2", None], dtype=object)
    groups = combine_groups(clusters, patients)
    # rows 0-1 (cluster 0) and 2 (patient p1 with row 0) join; 3-4 share p2; 5 stands alone
    assert groups[0] == groups[1] == groups[2]
    assert groups[3] == groups[4] != groups[0]
    assert len(set(groups)) == 3


def test_patients_and_clusters_never_span_folds() -> None:
    from podium.data.folds import combine_groups

    rng = np.random.default_rng(0)
    n = 200
    clusters = np.arange(n)
    clusters[1::7] = clusters[::7][: len(clusters[1::7])]
    patients = rng.integers(0, 40, n).astype(str)
    labels = rng.integers(0, 3, n)
    folds = make_folds(pd.Series([f"i{k}" for k in range(n)]), labels,
                       combine_groups(clusters, patients), n_folds=4, seed=0)
    frame = folds.assign(cluster=clusters, patient=patients)
    assert (frame.groupby("patient")["fold"].nunique() == 1).all()
    assert (frame.groupby("cluster")["fold"].nunique() == 1).all()


def test_train_only_images_get_fold_minus_one_and_duplicates_of_validated_ones_go() -> None:
    from podium.data.dedup import external_duplicates
    from podium.data.folds import assign_folds

    n = 40
    manifest = pd.DataFrame({
        "id": [f"c{k}" for k in range(n)] + ["x0", "x1", "t0"],
        "split": ["train"] * (n + 2) + ["test"],
        "source": ["competition"] * n + ["old", "old", "competition"],
        "train_only": [False] * n + [True, True, False],
    })
    clusters = pd.DataFrame({"id": manifest["id"], "split": manifest["split"],
                             "cluster": list(range(n)) + [3, n, n + 1]})
    excluded = external_duplicates(clusters, manifest)
    assert excluded["id"].tolist() == ["x0"]
    labels = np.arange(n + 2) % 2
    folds = assign_folds(manifest, clusters, set(excluded["id"]), labels, n_folds=2, seed=0)
    assert "x0" not in set(folds["id"])
    assert folds.set_index("id").at["x1", "fold"] == -1
    assert set(folds.loc[folds["id"].str.startswith("c"), "fold"]) == {0, 1}

    multilabel = np.stack([labels, 1 - labels, np.arange(n + 2) % 3 == 0], axis=1).astype(int)
    folds = assign_folds(manifest, clusters, set(excluded["id"]), multilabel, n_folds=2, seed=0)
    assert "x0" not in set(folds["id"]) and folds.set_index("id").at["x1", "fold"] == -1
    validated = folds[folds["fold"] >= 0].merge(clusters, on="id")
    assert (validated.groupby("cluster")["fold"].nunique() == 1).all()
    rows = manifest.index[manifest["id"].isin(validated["id"])]
    per_fold = [multilabel[rows][validated.set_index("id").loc[manifest.loc[rows, "id"], "fold"]
                                 .to_numpy() == f].sum(axis=0) for f in (0, 1)]
    assert (np.minimum(*per_fold) > 0).all()  # every label in both folds


def test_multilabel_folds_balance_every_label_better_than_chance() -> None:
    from podium.data.folds import make_multilabel_folds

    rng = np.random.default_rng(0)
    n, n_labels, k = 600, 6, 5
    rates = np.array([0.5, 0.2, 0.1, 0.05, 0.02, 0.01])
    labels = (rng.random((n, n_labels)) < rates).astype(int)
    groups = rng.integers(0, 300, n)
    folds = make_multilabel_folds(pd.Series(range(n)), labels, groups, k, seed=0)
    assert (pd.DataFrame({"g": groups, "f": folds["fold"]}).groupby("g")["f"].nunique()
            == 1).all()

    def worst_deviation(fold: np.ndarray) -> float:
        per_fold = np.array([labels[fold == f].sum(axis=0) for f in range(k)])
        return float((np.abs(per_fold - labels.sum(axis=0) / k)).max())

    stratified = worst_deviation(folds["fold"].to_numpy())
    chance = worst_deviation(rng.integers(0, k, 300)[groups])
    assert stratified <= 2.0 < chance
    assert np.ptp(np.bincount(folds["fold"], minlength=k)) <= 0.05 * n
