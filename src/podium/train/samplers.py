"""Training samplers for imbalanced classes, built by name from the config.

Plain shuffling shows a 1% class to the model once per hundred rows; these samplers redraw the
epoch so rare classes are seen more often. Every sampler takes all its randomness from one
``torch.Generator``, so a fold's run is reproducible from its seed, and yields positions
``0..n-1`` into the training dataset, ``num_samples`` of them per epoch (default ``n``).
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

from podium.errors import PodiumInputError, did_you_mean

SAMPLER_KEY = "models.<name>.sampler"


def _as_generator(generator: torch.Generator | int | None) -> torch.Generator:
    """A generator from a generator (used as is), a seed, or None (seeded from torch's global
    RNG, like ``RandomSampler``)."""
    if isinstance(generator, torch.Generator):
        return generator
    if generator is None:
        generator = int(torch.empty((), dtype=torch.int64).random_().item())
    return torch.Generator().manual_seed(int(generator))


def _check_labels(labels: np.ndarray) -> np.ndarray:
    """Class indices ``(n,)`` or a 0/1 multilabel matrix ``(n, n_classes)`` as int64.

    An ``(n, 1)`` column is read as class indices: one binary target, not a one-label
    multilabel task (whose unlabelled rows would otherwise all look alike).
    """
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim not in (1, 2) or len(labels) == 0:
        raise PodiumInputError(
            f"config key {SAMPLER_KEY}: a sampler needs class labels of shape (n,) or a 0/1 "
            f"matrix (n, n_classes) with n > 0; got shape {labels.shape}"
        )
    integral = (np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.bool_)
                or (np.issubdtype(labels.dtype, np.floating)
                    and bool(np.all(np.isfinite(labels) & (labels == np.round(labels))))))
    if not integral:
        raise PodiumInputError(
            f"config key {SAMPLER_KEY}: class samplers need integer class labels; "
            f"got {labels.dtype} values (a regression target?)"
        )
    labels = labels.astype(np.int64)
    if labels.ndim == 1 and labels.min() < 0:
        raise PodiumInputError(f"config key {SAMPLER_KEY}: class indices must be >= 0")
    if labels.ndim == 2 and not np.isin(labels, (0, 1)).all():
        raise PodiumInputError(f"config key {SAMPLER_KEY}: a multilabel matrix must be 0/1")
    return labels


def _check_num_samples(num_samples: int | None, n: int) -> int:
    if num_samples is None:
        return n
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise PodiumInputError(
            f"config key {SAMPLER_KEY}: num_samples must be a positive integer, not "
            f"{num_samples!r}"
        )
    return num_samples


class ClassBalancedSampler(Sampler[int]):
    """Weighted sampling with replacement, each row weighted ``count(class) ** -alpha``.

    Class ``c`` then gets a share proportional to ``count(c) ** (1 - alpha)``: ``alpha=1``
    balances classes, ``alpha=0`` keeps the natural frequencies, values between soften the
    imbalance. Multilabel rows take the weight of their rarest label (so rare labels are
    boosted wherever they appear); rows with no label take the weight of the most common label.
    """

    def __init__(self, labels: np.ndarray, generator: torch.Generator | int | None = None,
                 alpha: float = 1.0, num_samples: int | None = None) -> None:
        labels = _check_labels(labels)
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not (
            np.isfinite(alpha) and alpha >= 0
        ):
            raise PodiumInputError(
                f"config key {SAMPLER_KEY}: class_balanced alpha must be a number >= 0, not "
                f"{alpha!r}"
            )
        self.alpha = float(alpha)
        self.num_samples = _check_num_samples(num_samples, len(labels))
        self.generator = _as_generator(generator)
        self.weights = torch.as_tensor(self._row_weights(labels, self.alpha), dtype=torch.float64)

    @staticmethod
    def _row_weights(labels: np.ndarray, alpha: float) -> np.ndarray:
        if labels.ndim == 1:
            counts = np.bincount(labels).astype(np.float64)
            return counts[labels] ** -alpha
        counts = labels.sum(axis=0).astype(np.float64)
        # The rarest label of each row: its smallest count among the row's labels.
        row_min = np.where(labels > 0, counts[None, :], np.inf).min(axis=1)
        row_min[np.isinf(row_min)] = counts.max()
        return row_min ** -alpha

    def __iter__(self) -> Iterator[int]:
        draws = torch.multinomial(self.weights, self.num_samples, replacement=True,
                                  generator=self.generator)
        yield from draws.tolist()

    def __len__(self) -> int:
        return self.num_samples


class ClassAwareSampler(Sampler[int]):
    """Class-aware sampling (Shen et al., 2016): every draw picks a class uniformly, then the
    next row of that class.

    Each class's rows are walked in a shuffled order, reshuffled when used up, so every row of
    a class is seen before any repeats; the walk carries over between epochs, so a large class
    is covered over several epochs instead of restarting. A multilabel row belongs to each of
    its labels; rows with no label form one more group of their own, so they are still drawn.
    Classes with no rows are never picked.
    """

    def __init__(self, labels: np.ndarray, generator: torch.Generator | int | None = None,
                 num_samples: int | None = None) -> None:
        labels = _check_labels(labels)
        self.num_samples = _check_num_samples(num_samples, len(labels))
        self.generator = _as_generator(generator)
        if labels.ndim == 1:
            groups = [np.flatnonzero(labels == c) for c in range(labels.max() + 1)]
        else:
            groups = [np.flatnonzero(labels[:, c]) for c in range(labels.shape[1])]
            groups.append(np.flatnonzero(labels.sum(axis=1) == 0))
        self.groups = [g for g in groups if len(g)]
        self._order = [np.empty(0, dtype=np.int64) for _ in self.groups]
        self._pos = [0] * len(self.groups)

    def _take(self, group: int, k: int) -> np.ndarray:
        """The next ``k`` rows of ``group``'s walk, reshuffling each time it is used up."""
        rows = self.groups[group]
        out: list[np.ndarray] = []
        while k > 0:
            if self._pos[group] == len(self._order[group]):
                perm = torch.randperm(len(rows), generator=self.generator).numpy()
                self._order[group] = rows[perm]
                self._pos[group] = 0
            start = self._pos[group]
            chunk = self._order[group][start:start + k]
            self._pos[group] = start + len(chunk)
            out.append(chunk)
            k -= len(chunk)
        return np.concatenate(out) if out else np.empty(0, dtype=np.int64)

    def __iter__(self) -> Iterator[int]:
        # The epoch is drawn in full up front, so the walk state moves the same way however
        # much of the epoch is consumed.
        classes = torch.randint(len(self.groups), (self.num_samples,),
                                generator=self.generator).numpy()
        epoch = np.empty(self.num_samples, dtype=np.int64)
        for group in range(len(self.groups)):
            slots = np.flatnonzero(classes == group)
            epoch[slots] = self._take(group, len(slots))
        yield from epoch.tolist()

    def __len__(self) -> int:
        return self.num_samples


SAMPLERS: dict[str, type[Sampler[int]] | None] = {
    "random": None,
    "class_balanced": ClassBalancedSampler,
    "class_aware": ClassAwareSampler,
}


def parse_sampler(config: str | dict | None, key: str = SAMPLER_KEY) -> tuple[str | None, dict]:
    """``(name, params)`` of a sampler config: a name, or ``{name, params}``."""
    if config is None or isinstance(config, str):
        return config, {}
    if not isinstance(config, dict) or "name" not in config:
        raise PodiumInputError(
            f"config key {key}: expected a sampler name or {{name, params}}, got {config!r}.")
    extra = [k for k in config if k not in ("name", "params")]
    if extra:
        raise PodiumInputError(f"config key {key}: unknown key(s) {', '.join(map(repr, extra))}"
                               "; allowed: name, params.")
    params = config.get("params") or {}
    if not isinstance(params, dict):
        raise PodiumInputError(f"config key {key}.params: expected a mapping, got {params!r}.")
    return config["name"], dict(params)


def check_sampler(name: str | None, params: dict, key: str = SAMPLER_KEY
                  ) -> type[Sampler[int]] | None:
    """The sampler class ``name`` stands for (None: plain shuffling), once the name and every
    parameter name are known; ``key`` names the config key in errors."""
    if name is None:
        if params:
            raise PodiumInputError(
                f"config key {key}: parameters {sorted(params)} given without a sampler"
            )
        return None
    if name not in SAMPLERS:
        hint = did_you_mean(name, SAMPLERS, cutoff=0.5)
        raise PodiumInputError(
            f"config key {key}: unknown sampler {name!r}.{hint} "
            f"Known: {', '.join(SAMPLERS)}."
        )
    cls = SAMPLERS[name]
    known = [] if cls is None else [
        p for p in inspect.signature(cls.__init__).parameters
        if p not in ("self", "labels", "generator")
    ]
    unknown = [p for p in params if p not in known]
    if unknown:
        raise PodiumInputError(
            f"config key {key}: sampler {name!r} takes no parameter(s) "
            f"{', '.join(map(repr, unknown))}; it takes: {', '.join(known) or 'none'}."
        )
    return cls


def check_sampler_config(config: str | dict | None, key: str = SAMPLER_KEY) -> None:
    """The config check's look-up of a model's ``sampler`` (a name or ``{name, params}``)."""
    check_sampler(*parse_sampler(config, key), key)


def build_sampler(name: str | None, labels: np.ndarray, generator: torch.Generator,
                  **params: object) -> Sampler[int] | None:
    """The configured sampler over the training rows' ``labels``, or None for plain
    shuffling (``name`` None or ``"random"``; the DataLoader then uses ``shuffle=True``)."""
    cls = check_sampler(name, params)
    if cls is None:
        return None
    return cls(labels, generator=generator, **params)
