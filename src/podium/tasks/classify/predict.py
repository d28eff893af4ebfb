"""Predictions of trained folds: OOF rows inside the training job, test images in a job of
their own.

Test prediction is separate from training so that new test images (a competition's second
stage, a late fix to the test folder) rerun only prediction: a fold's ``model.pt`` holds the
weights and everything needed to rebuild the network, and TTA comes from the same settings.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from podium.errors import PodiumInputError
from podium.metrics import require_finite
from podium.tables import load_packed, write_parquet
from podium.task import TaskSpec
from podium.tasks.classify.models import build_classifier
from podium.train.augment import build_augmentation
from podium.train.data import BatchLoader, PackedImages
from podium.train.runtime import Runtime
from podium.train.tta import TtaView, build_tta, check_merge, merge_views

log = logging.getLogger(__name__)


def to_predictions(logits: torch.Tensor, output_kind: str) -> torch.Tensor:
    """Softmax over classes, an independent sigmoid per class for multilabel, or the value
    itself for regression and ordinal targets."""
    if output_kind == "value":
        return logits
    return torch.sigmoid(logits) if output_kind == "sigmoid" else torch.softmax(logits, dim=1)


@torch.no_grad()
def predict_proba(
    model: torch.nn.Module, array: np.ndarray, rows: np.ndarray, runtime: Runtime,
    views: list[TtaView], batch_size: int, output_kind: str, merge: str = "mean",
) -> np.ndarray:
    """Class probabilities (or values) of ``array[rows]``, merged over the TTA views. Named
    views run on the device on batches gathered straight from the array; albumentations views
    get their own pass through a DataLoader whose workers augment on the CPU."""
    model.eval()
    per_view = []
    for view in views:
        if view.pipeline:
            augmented = PackedImages(array, rows, augment=build_augmentation(view.pipeline, 0))
            loader = DataLoader(augmented, batch_size=batch_size, **runtime.loader_args)
        else:
            loader = BatchLoader([PackedImages(array, rows)], batch_size,
                                 pin_memory=runtime.cuda)
        out = []
        for images, _ in loader:
            batch = runtime.batch(images)
            with runtime.autocast():
                logits = model(view.apply(batch))
            predictions = to_predictions(logits.float(), output_kind)
            out.append(view.invert(predictions, tuple(batch.shape[2:])).cpu())
        per_view.append(torch.cat(out) if out else torch.zeros(0))
    if not len(rows):
        return np.zeros((0, 0))
    return merge_views(per_view, merge, output_kind).numpy()


def load_fold_model(weights_path: str | Path, runtime: Runtime) -> tuple[torch.nn.Module, dict]:
    """The network a training job saved, on the runtime's device, in eval mode."""
    state = torch.load(weights_path, map_location="cpu", weights_only=True)
    saved = state["settings"]
    model = build_classifier(
        saved["backbone"], state["num_outputs"], state["in_chans"], pretrained=False,
        pooling=saved["pooling"], dropout=saved["drop_rate"], hidden=list(saved["hidden"]))
    model.load_state_dict(state["state_dict"])
    return runtime.model(model).eval(), state


def predict_test_fold(
    settings: Any, spec: TaskSpec, weights_path: str | Path, test_array: str | Path,
    test_index: str | Path, out_path: str | Path, threads: int = 1, name: str | None = None,
) -> dict[str, Any]:
    """Predict every test image with one fold's model and the model's TTA; writes ``id`` plus
    the prediction columns, in the packed test order. ``settings`` is the model's
    :class:`~podium.tasks.classify.fit.TrainSettings` (TTA, batch size, precision)."""
    name = name or settings.backbone
    views = build_tta(settings.tta, settings.tta_scales)
    check_merge(settings.tta_merge)
    torch.set_num_threads(max(1, threads))
    runtime = Runtime.detect(threads, settings.precision, settings.channels_last,
                             key=f"models.{name}.precision")
    start = time.perf_counter()
    model, state = load_fold_model(weights_path, runtime)
    images = load_packed(test_array)
    if images.shape[3] != state["in_chans"]:
        raise PodiumInputError(
            f"{test_array}: test images have {images.shape[3]} channels but {weights_path} was "
            f"trained on {state['in_chans']}; rerun preprocessing and training together.")
    if state["num_outputs"] != spec.n_outputs:
        raise PodiumInputError(
            f"{weights_path}: the model has {state['num_outputs']} outputs but the task has "
            f"{spec.n_outputs}; rerun training after changing the task.")
    ids = pd.read_parquet(test_index)["id"].reset_index(drop=True)
    test = predict_proba(model, images, np.arange(len(images)), runtime, views,
                         settings.batch_size * 2, spec.output_kind, settings.tta_merge)
    require_finite(test, f"models.{name}: test predictions of {weights_path}")
    write_parquet(pd.concat([ids, pd.DataFrame(test, columns=spec.prediction_columns)],
                            axis=1), out_path)
    seconds = time.perf_counter() - start
    log.info("%s: predicted %d test images with %d TTA views on %s (%s) in %.1fs", name,
             len(ids), len(views), runtime.device, runtime.precision, seconds)
    return {"n_test": len(ids), "tta": [v.label for v in views], "seconds": seconds,
            "device": str(runtime.device)}
