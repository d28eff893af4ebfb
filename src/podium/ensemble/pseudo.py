"""Pseudo labels: the test images the round-1 models agree on, as extra training data.

Fold k's round-2 model may only learn from pseudo labels that never saw fold k's labels, so
they come from the round-1 models of fold k alone (their test predictions), never from the
gathered models or the ensembles, which were fitted on every fold.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from podium.errors import PodiumInputError
from podium.task import LABEL_SEPARATOR, TaskSpec

log = logging.getLogger(__name__)


def select_pseudo_labels(spec: TaskSpec, test_frames: list[pd.DataFrame],
                         threshold: float) -> pd.DataFrame:
    """``id, label, confidence`` of the test images whose mean predicted probability is
    confident enough: the top class at least ``threshold`` (binary, multiclass), or every
    class at least ``threshold`` on its side of 0.5 (multilabel, labelled by the
    competition's decision rule, as the submission would). Labels are written as in
    train.csv, so they encode like train labels."""
    if spec.predicts_value:
        raise PodiumInputError(
            f"config key pseudo_label.enabled: pseudo-labelling needs class probabilities; "
            f"a {spec.task} task predicts values. Turn it off for this competition."
        )
    columns = spec.prediction_columns
    ids = test_frames[0]["id"]
    proba = np.mean([f.set_index("id").loc[ids, columns].to_numpy(np.float64)
                     for f in test_frames], axis=0)
    classes = np.asarray(spec.classes)
    if spec.is_multilabel:
        confidence = np.maximum(proba, 1 - proba).min(axis=1)
        labels = [LABEL_SEPARATOR.join(classes[row.astype(bool)]) for row in spec.decide(proba)]
    else:
        confidence = proba.max(axis=1)
        labels = classes[proba.argmax(axis=1)].tolist()
    chosen = confidence >= threshold
    log.info("pseudo labels: %d of %d test images at confidence >= %.3f", int(chosen.sum()),
             len(chosen), threshold)
    return pd.DataFrame({"id": ids.to_numpy()[chosen],
                         "label": np.asarray(labels, dtype=object)[chosen],
                         "confidence": np.round(confidence[chosen], 6)})
