"""Imbalance samplers: class shares, the class-aware walk, determinism and config errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from podium.errors import PodiumInputError
from podium.train.samplers import (
    SAMPLERS,
    ClassAwareSampler,
    ClassBalancedSampler,
    build_sampler,
)

DRAWS = 20_000


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def imbalanced(n_major: int = 900, n_minor: int = 100) -> np.ndarray:
    """Shuffled 9:1 binary labels, so positions say nothing about classes."""
    labels = np.array([0] * n_major + [1] * n_minor)
    return np.random.default_rng(0).permutation(labels)


def shares(labels: np.ndarray, draws: list[int], n_classes: int) -> np.ndarray:
    return np.bincount(labels[draws], minlength=n_classes) / len(draws)


def test_random_and_none_mean_plain_shuffling():
    assert build_sampler(None, imbalanced(), gen()) is None
    assert build_sampler("random", imbalanced(), gen()) is None
    assert SAMPLERS["random"] is None


@pytest.mark.parametrize("name", ["class_balanced", "class_aware"])
def test_yields_positions_and_len(name):
    labels = imbalanced()
    sampler = build_sampler(name, labels, gen())
    draws = list(sampler)
    assert len(sampler) == len(draws) == len(labels)
    assert all(isinstance(i, int) and 0 <= i < len(labels) for i in draws)
    assert len(build_sampler(name, labels, gen(), num_samples=37)) == 37
    assert len(list(build_sampler(name, labels, gen(), num_samples=37))) == 37


def test_class_balanced_alpha1_balances_a_9_to_1_imbalance():
    labels = imbalanced()
    draws = list(ClassBalancedSampler(labels, gen(), alpha=1.0, num_samples=DRAWS))
    assert shares(labels, draws, 2) == pytest.approx([0.5, 0.5], abs=0.03)


def test_class_balanced_alpha0_keeps_natural_frequencies():
    labels = imbalanced()
    draws = list(ClassBalancedSampler(labels, gen(), alpha=0.0, num_samples=DRAWS))
    assert shares(labels, draws, 2) == pytest.approx([0.9, 0.1], abs=0.02)


def test_class_balanced_half_alpha_uses_square_root_frequencies():
    labels = imbalanced()  # shares proportional to sqrt(900) : sqrt(100) = 3 : 1
    draws = list(ClassBalancedSampler(labels, gen(), alpha=0.5, num_samples=DRAWS))
    assert shares(labels, draws, 2) == pytest.approx([0.75, 0.25], abs=0.02)


def test_class_balanced_default_is_fully_balanced_via_build_sampler():
    labels = np.random.default_rng(1).permutation(np.repeat([0, 1, 2], [700, 250, 50]))
    draws = list(build_sampler("class_balanced", labels, gen(), num_samples=DRAWS))
    assert shares(labels, draws, 3) == pytest.approx([1 / 3] * 3, abs=0.03)


def test_class_balanced_multilabel_uses_rarest_label():
    labels = np.array([[1, 0, 0]] * 900 + [[0, 1, 0]] * 90 + [[0, 1, 1]] * 10 + [[0, 0, 0]] * 5)
    sampler = ClassBalancedSampler(labels, gen(), num_samples=DRAWS)
    counts = np.array([900.0, 100.0, 10.0])  # per label
    expected = np.concatenate([np.full(900, 1 / counts[0]), np.full(90, 1 / counts[1]),
                               np.full(10, 1 / counts[2]), np.full(5, 1 / counts.max())])
    assert np.allclose(sampler.weights.numpy(), expected)
    draws = np.array(list(sampler))
    has_rare = labels[draws, 2].mean()  # label 2's rows carry a third of the weight
    assert has_rare == pytest.approx(1.0 / (1.0 + 0.9 + 1.0 + 5 / 900), abs=0.02)


def test_class_aware_gives_each_class_an_equal_share():
    labels = np.random.default_rng(2).permutation(np.repeat([0, 1, 2, 3], [850, 100, 40, 10]))
    draws = list(ClassAwareSampler(labels, gen(), num_samples=DRAWS))
    assert shares(labels, draws, 4) == pytest.approx([0.25] * 4, abs=0.02)


def test_class_aware_visits_every_row_of_a_class_before_repeating():
    labels = imbalanced(n_major=500, n_minor=7)
    minor = set(np.flatnonzero(labels == 1).tolist())
    sampler = ClassAwareSampler(labels, gen(), num_samples=40)
    walk: list[int] = []
    for _ in range(5):  # the walk carries on across epochs
        walk += [i for i in sampler if labels[i] == 1]
    assert len(walk) >= 3 * len(minor)
    for start in range(0, len(walk) - len(minor) + 1, len(minor)):
        assert set(walk[start:start + len(minor)]) == minor
    major = [i for i in ClassAwareSampler(labels, gen(), num_samples=400) if labels[i] == 0]
    assert len(set(major)) == len(major)  # fewer draws than rows: no repeats at all


def test_class_aware_multilabel_row_belongs_to_each_of_its_labels():
    labels = np.array([[1, 0, 0]] * 60 + [[1, 1, 0]] * 20 + [[0, 0, 1]] * 5 + [[0, 0, 0]] * 15)
    sampler = ClassAwareSampler(labels, gen(), num_samples=DRAWS * 2)
    groups = [np.flatnonzero(labels[:, c]) for c in range(3)] + [np.arange(85, 100)]
    assert [sorted(g) for g in sampler.groups] == [sorted(g) for g in groups]
    expected = np.zeros(len(labels))
    for g in groups:  # a group is picked w.p. 1/4, then each of its rows equally often
        expected[g] += 1 / len(groups) / len(g)
    observed = np.bincount(list(sampler), minlength=len(labels)) / len(sampler)
    assert 0.5 * np.abs(observed - expected).sum() < 0.03  # total variation distance


@pytest.mark.parametrize("name", ["class_balanced", "class_aware"])
def test_same_seed_same_epochs_different_seed_different(name):
    labels = imbalanced()

    def epochs(seed: int) -> list[list[int]]:
        sampler = build_sampler(name, labels, gen(seed))
        return [list(sampler) for _ in range(3)]

    first = epochs(7)
    assert first == epochs(7)
    assert first != epochs(8)
    assert first[0] != first[1]  # each epoch is a fresh draw


def test_an_int_seed_works_like_a_generator():
    labels = imbalanced()
    assert list(ClassAwareSampler(labels, 3)) == list(ClassAwareSampler(labels, gen(3)))
    assert list(ClassBalancedSampler(labels, 3)) == list(ClassBalancedSampler(labels, gen(3)))


def test_works_as_a_dataloader_sampler():
    labels = imbalanced()
    dataset = TensorDataset(torch.arange(len(labels)), torch.as_tensor(labels))
    sampler = build_sampler("class_aware", labels, gen())
    batches = list(DataLoader(dataset, batch_size=64, sampler=sampler))
    rows = torch.cat([batch[0] for batch in batches])
    assert len(rows) == len(labels)
    assert torch.equal(torch.cat([batch[1] for batch in batches]), torch.as_tensor(labels[rows]))
    assert torch.cat([batch[1] for batch in batches]).float().mean() > 0.4  # minority ~ half


def test_binary_column_is_read_as_class_indices():
    labels = imbalanced()
    column = labels[:, None]
    assert list(ClassBalancedSampler(column, gen())) == list(ClassBalancedSampler(labels, gen()))
    assert list(ClassAwareSampler(column, gen())) == list(ClassAwareSampler(labels, gen()))


def test_unknown_sampler_lists_close_names():
    with pytest.raises(PodiumInputError, match=r"models\.<name>\.sampler") as err:
        build_sampler("class_balance", imbalanced(), gen())
    assert "class_balanced" in str(err.value)
    with pytest.raises(PodiumInputError, match="class_aware"):
        build_sampler("classaware", imbalanced(), gen())


def test_bad_parameters_and_labels_are_rejected():
    with pytest.raises(PodiumInputError, match="alpah"):
        build_sampler("class_balanced", imbalanced(), gen(), alpah=0.5)
    with pytest.raises(PodiumInputError, match="alpha"):
        build_sampler("class_balanced", imbalanced(), gen(), alpha=-1)
    with pytest.raises(PodiumInputError, match="num_samples"):
        build_sampler("class_aware", imbalanced(), gen(), num_samples=0)
    with pytest.raises(PodiumInputError, match="regression"):
        build_sampler("class_aware", np.array([0.5, 1.2, 3.3]), gen())
    with pytest.raises(PodiumInputError, match="0/1"):
        build_sampler("class_balanced", np.array([[0, 2], [1, 0]]), gen())
