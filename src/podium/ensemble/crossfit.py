"""The one fold-by-fold loop: every blend, stacker and post-processor (of labels, masks or
instances) is fitted on the other folds' OOF rows and applied to each fold's own rows, so an
entry's OOF score never saw its rows' truth and is an honest estimate of what it adds on test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from podium.errors import PodiumInputError

Fitted = TypeVar("Fitted")


@dataclass(frozen=True)
class FoldFit(Generic[Fitted]):
    """What was fitted without fold ``fold``, and that fold's rows (``held``, a row mask)."""

    fold: Any
    held: np.ndarray
    fitted: Fitted


def cross_fit(fold: Any, fit: Callable[[np.ndarray], Fitted],
              apply: Callable[[Fitted, np.ndarray], Any], *, what: str,
              min_folds: int = 2) -> tuple[np.ndarray, list[FoldFit[Fitted]]]:
    """OOF outputs, fold ``k``'s rows from ``apply(fit(rows outside k), rows of k)``, and each
    fold's :class:`FoldFit` in fold order.

    ``fit`` and ``apply`` take boolean row masks; ``apply`` returns one output per held row
    (any trailing shape, e.g. class probabilities, masks or instance labels), and the OOF
    array takes the first fold's dtype. ``what`` names the fitted thing in the error for too
    few folds, e.g. ``"fold-by-fold post-processing"``."""
    fold = np.asarray(fold).reshape(-1)
    labels = np.unique(fold)
    if len(labels) < min_folds:
        count = "two" if min_folds == 2 else str(min_folds)
        raise PodiumInputError(f"{what} needs at least {count} folds.")
    out: np.ndarray | None = None
    fits: list[FoldFit[Fitted]] = []
    for k in labels:
        held = fold == k
        fitted = fit(~held)
        part = np.asarray(apply(fitted, held))
        if out is None:
            out = np.zeros((len(fold), *part.shape[1:]), dtype=part.dtype)
        out[held] = part
        fits.append(FoldFit(k.item() if isinstance(k, np.generic) else k, held, fitted))
    assert out is not None  # at least one fold
    return out, fits
