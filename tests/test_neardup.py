"""Near-duplicate search, clusters, leaks and label conflicts on real planted image files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from podium.data.dedup import (
    cluster_pairs,
    excluded_train_ids,
    find_duplicates,
    label_conflicts,
    leaked_test_images,
)
from podium.data.montage import plot_pair_montage
from podium.data.neardup import (
    D4_PERMUTATIONS,
    NearDuplicateSettings,
    batch_d4,
    compute_signatures,
    correlation_vectors,
    d4_views,
    pair_correlation,
    phash,
    phash_bits,
)
from podium.synthetic import base_image, score_pairs, write_planted_set


def _with_md5(files: pd.DataFrame) -> pd.DataFrame:
    files = files.copy()
    files["md5"] = [hashlib.md5(Path(p).read_bytes()).hexdigest() for p in files["path"]]
    return files


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return write_planted_set(tmp_path_factory.mktemp("planted"), n_base=150, n_duplicates=50,
                             size=128, seed=3)


def test_planted_duplicates_found_and_distinct_images_not_merged(planted):
    manifest = _with_md5(planted.files)
    clusters, pairs = find_duplicates(manifest, NearDuplicateSettings(), threads=2)
    scores = score_pairs(pairs, planted)
    assert scores["recall"] == 1.0 and scores["precision"] == 1.0
    source = manifest.set_index("id")["source"]
    members = clusters.assign(source=source.loc[clusters["id"]].to_numpy())
    assert (members.groupby("cluster")["source"].nunique() == 1).all()
    assert clusters["cluster"].nunique() == 150
    # Two copies of one base halved (or doubled) the same way would be byte-identical.
    assert "near" in set(pairs["kind"]) and set(pairs["kind"]) <= {"near", "exact"}
    assert list(pairs.columns) == ["id_a", "id_b", "kind", "score"]
    assert (pairs["score"] >= 0.9).all()


def test_flipped_copies_need_flip_invariance(tmp_path):
    planted = write_planted_set(tmp_path, n_base=40, n_duplicates=12, size=96, seed=5,
                                flips=True)
    manifest = _with_md5(planted.files)
    flipped = {f"dup{k:06d}" for k in range(12) if k % 6 == 5}
    _, plain = find_duplicates(manifest, NearDuplicateSettings(flip_invariant=False))
    _, invariant = find_duplicates(manifest, NearDuplicateSettings(flip_invariant=True))
    assert not flipped & set(plain["id_a"]) | set(plain["id_b"]) & flipped
    assert flipped <= set(invariant["id_a"]) | set(invariant["id_b"])
    assert score_pairs(invariant, planted)["recall"] == 1.0


def test_exact_copies_are_exact_not_near(planted, tmp_path):
    files = planted.files.iloc[:5].copy()
    copy = tmp_path / "copy.jpg"
    copy.write_bytes(Path(files["path"].iloc[0]).read_bytes())
    files = pd.concat([files, files.iloc[[0]].assign(id="copy", path=str(copy))])
    _, pairs = find_duplicates(_with_md5(files), NearDuplicateSettings())
    assert pairs.to_dict("records") == [
        {"id_a": "img000000", "id_b": "copy", "kind": "exact", "score": 1.0}]


def test_four_channel_stacks_are_compared_on_all_channels(tmp_path):
    rows = []
    for k in range(6):
        stack = np.dstack([base_image(np.random.default_rng([k, c]), 64)[:, :, 0]
                           for c in range(4)])
        variants = [stack, np.clip(stack * 1.1 + 5, 0, 255).astype(np.uint8)] if k == 0 else [
            stack]
        for v, image in enumerate(variants):
            path = tmp_path / f"s{k}_{v}.png"
            cv2.imwrite(str(path), image)
            rows.append({"id": f"s{k}_{v}", "path": str(path), "height": 64, "width": 64,
                         "channels": 4, "split": "train"})
    _, pairs = find_duplicates(_with_md5(pd.DataFrame(rows)), NearDuplicateSettings())
    assert pairs[["id_a", "id_b"]].values.tolist() == [["s0_0", "s0_1"]]


def test_hash_and_correlation_properties():
    image = base_image(np.random.default_rng(1), 128)[:, :, 0].astype(np.float32)
    thumb = cv2.resize(image, (32, 32), interpolation=cv2.INTER_AREA)
    assert phash(thumb) == phash(thumb.copy())
    reference = cv2.dct(thumb)[:8, :8].ravel()[1:]  # the batched DCT matches OpenCV's
    np.testing.assert_array_equal(phash_bits(thumb[None])[0], reference > np.median(reference))
    brighter = np.clip(thumb * 1.2 + 10, 0, 255)
    assert np.bitwise_count(phash(thumb) ^ phash(brighter)) <= 4
    margin = 3  # a ~5 % crop of the 128-px image, resized back
    cropped = cv2.resize(image[margin:-margin, margin:-margin], (32, 32),
                         interpolation=cv2.INTER_AREA)
    other = cv2.resize(base_image(np.random.default_rng(2), 128)[:, :, 0].astype(np.float32),
                       (32, 32), interpolation=cv2.INTER_AREA)
    thumbs = np.stack([thumb, cropped, other, d4_views(thumb)[3]]).round().astype(np.uint8)
    i, j = np.array([0, 0, 0, 0]), np.array([0, 1, 2, 3])
    vectors = correlation_vectors(thumbs)
    plain = pair_correlation(vectors, i, j, views=1)
    assert plain[0] == pytest.approx(1.0, abs=1e-5)
    assert plain[1] > 0.9 and plain[2] < 0.8 and plain[3] < 0.8
    assert pair_correlation(vectors, i, j, views=8)[3] == pytest.approx(1.0, abs=1e-5)


def test_flipped_vectors_are_a_permutation_of_the_projected_ones():
    """pair_correlation permutes each image's vectors instead of projecting every flip and
    turn again; that is exact only while blur, zoom and resize commute with D4."""
    thumbs = np.random.default_rng(3).random((20, 32, 32)).astype(np.float32) * 255
    vectors = correlation_vectors(thumbs)
    for view in range(8):
        projected = correlation_vectors(batch_d4(thumbs, view))
        permuted = vectors[:, :, D4_PERMUTATIONS[view]]
        np.testing.assert_allclose(projected, permuted, atol=1e-5)


def test_clusters_are_transitive_and_numbered_in_manifest_order():
    manifest = pd.DataFrame({"id": list("abcde"), "split": ["train"] * 4 + ["test"]})
    pairs = pd.DataFrame({"id_a": ["d", "b"], "id_b": ["c", "e"], "kind": "near",
                          "score": 0.95})
    clusters = cluster_pairs(manifest, pairs)
    assert clusters["cluster"].tolist() == [0, 1, 2, 2, 1]
    assert clusters["split"].tolist() == manifest["split"].tolist()


def test_leaks_and_label_conflicts_are_reported():
    manifest = pd.DataFrame({
        "id": ["a", "b", "c", "d", "t1", "t2"],
        "split": ["train"] * 4 + ["test"] * 2,
        "label": ["cat", "cat", "dog", "cat", None, None],
    })
    clusters = pd.DataFrame({"id": manifest["id"], "cluster": [0, 0, 1, 1, 0, 2],
                             "split": manifest["split"]})
    leaks = leaked_test_images(clusters, manifest, "label")
    assert leaks.to_dict("records") == [{"test_id": "t1", "cluster": 0, "n_train": 2,
                                         "train_label": "cat", "label_conflict": False}]
    conflicts = label_conflicts(clusters, manifest, "label")
    assert conflicts.to_dict("records") == [{"cluster": 1, "id": "c", "label": "dog"},
                                            {"cluster": 1, "id": "d", "label": "cat"}]


def test_signatures_shapes(planted):
    signatures = compute_signatures(planted.files.iloc[:10], flip_invariant=True)
    assert signatures.bits.shape == (10, 8, 63) and signatures.thumbnails.shape == (10, 32, 32)


def test_montage_is_written(planted, tmp_path):
    manifest = _with_md5(planted.files)
    _, pairs = find_duplicates(manifest, NearDuplicateSettings())
    plot_pair_montage(pairs, manifest, tmp_path / "montage.png")
    assert (tmp_path / "montage.png").read_bytes()[:4] == b"\x89PNG"
    plot_pair_montage(pairs.iloc[:0], manifest, tmp_path / "empty.png")
    assert (tmp_path / "empty.png").stat().st_size > 0


def test_drop_policies():
    clusters = pd.DataFrame({"id": ["a", "b", "c", "d", "e", "t"], "cluster": [0, 0, 0, 1, 1, 0],
                             "split": ["train"] * 5 + ["test"]})
    pairs = pd.DataFrame({"id_a": ["a", "a", "d", "a"], "id_b": ["b", "c", "e", "t"],
                          "kind": ["exact", "near", "pixel", "exact"], "score": 1.0})
    conflicts = pd.DataFrame({"cluster": [1, 1], "id": ["d", "e"], "label": ["x", "y"]})
    assert excluded_train_ids(clusters, pairs, conflicts, []).empty
    exact = excluded_train_ids(clusters, pairs, conflicts, ["exact"])
    assert exact.to_dict("list") == {"id": ["b", "e"], "reason": ["exact duplicate"] * 2}
    both = excluded_train_ids(clusters, pairs, conflicts, ["exact", "conflicts"])
    assert sorted(both["id"]) == ["b", "d", "e"]
    with pytest.raises(ValueError, match="unknown"):
        excluded_train_ids(clusters, pairs, conflicts, ["all"])


def test_leak_labels_override_predictions_unless_labels_conflict():
    from podium.submit.submission import apply_leak_labels
    from podium.task import TaskSpec

    spec = TaskSpec("multiclass", "label", ("cat", "dog"), "accuracy", "id")
    predictions = pd.DataFrame({"id": ["t1", "t2", "t3"], "p_cat": [0.9, 0.8, 0.3],
                                "p_dog": [0.1, 0.2, 0.7]})
    leaks = pd.DataFrame({"test_id": ["t1", "t2"], "cluster": [0, 1], "n_train": [1, 2],
                          "train_label": ["dog", "cat"], "label_conflict": [False, True]})
    out = apply_leak_labels(predictions, leaks, spec)
    assert out["p_dog"].tolist() == [1.0, 0.2, 0.7]
    assert out["p_cat"].tolist() == [0.0, 0.8, 0.3]


def test_same_pixels_in_another_file_format_are_pixel_duplicates(tmp_path):
    from podium.data.ingest import inspect_image

    image = base_image(np.random.default_rng(9), 48)
    cv2.imwrite(str(tmp_path / "a.png"), image)
    cv2.imwrite(str(tmp_path / "b.png"), image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    cv2.imwrite(str(tmp_path / "c.tif"), image)
    rows = []
    for name in ("a.png", "b.png", "c.tif"):
        info = inspect_image(tmp_path / name)
        rows.append({"id": name, "split": "train", "md5": info.md5,
                     "pixel_md5": info.pixel_md5})
    manifest = pd.DataFrame(rows)
    assert manifest["md5"].nunique() == 3 and manifest["pixel_md5"].nunique() == 1
    clusters, pairs = find_duplicates(manifest, near=None)
    assert set(pairs["kind"]) == {"pixel"} and len(pairs) == 3
    assert clusters["cluster"].nunique() == 1
