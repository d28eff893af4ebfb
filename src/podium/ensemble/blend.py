"""Blends of model probabilities. Estimator-style: parameters in the constructor, fit, predict."""

from __future__ import annotations

import difflib

import numpy as np

from podium.errors import PodiumInputError


class MeanBlend:
    """Arithmetic mean of the models' probabilities; nothing is fitted, so nothing can leak."""

    def fit(self, probas: list[np.ndarray], y: np.ndarray) -> MeanBlend:
        return self

    def predict_proba(self, probas: list[np.ndarray]) -> np.ndarray:
        return np.mean(probas, axis=0)


BLENDS = {"mean": MeanBlend}


def make_blend(method: str) -> MeanBlend:
    """Look a blend up by its config name."""
    if method not in BLENDS:
        close = difflib.get_close_matches(method, BLENDS, n=3, cutoff=0.3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise PodiumInputError(
            f"config key ensemble.blends.<name>.method: unknown blend {method!r}.{hint} "
            f"Known: {', '.join(BLENDS)}."
        )
    return BLENDS[method]()
