"""The classify plug-in's training and test-prediction jobs: one model on one fold.

The fold's declared outputs are written only after training finishes, so Snakemake never sees
a half-trained fold as done. Each epoch's state is saved outside the outputs (see
:mod:`podium.train.resume`), so a killed fold continues from its last completed epoch. The
training itself is the one fold trainer's (:class:`podium.train.fit.FoldTrainer`); this
module builds its classifier, loss and data and writes the fold's weights and OOF.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from podium.errors import PodiumInputError
from podium.glue import StageJob
from podium.metrics import Metric, auc_defined, get_metric, require_finite
from podium.schema import (
    CLASSIFICATION,
    model_key_problems,
    schema_field,
    unknown_model_keys,
)
from podium.tables import load_packed, write_csv, write_json, write_parquet
from podium.task import TARGET_COLUMN, TaskSpec
from podium.tasks.classify.losses import build_loss
from podium.tasks.classify.models import build_classifier
from podium.tasks.classify.predict import predict_proba, predict_test_fold
from podium.train.augment import build_augmentation
from podium.train.data import PackedImages, fold_rows
from podium.train.epochs import NonFiniteLoss, run_epochs
from podium.train.fit import (
    FitSettings,
    FoldTrainer,
    TrainingData,
    epoch_seed,
    seed_everything,
)
from podium.train.resume import ResumeStore, resume_key
from podium.train.runtime import Runtime
from podium.train.samplers import build_sampler, parse_sampler
from podium.train.tta import TtaView, build_tta, check_merge

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class TrainSettings(FitSettings):
    """One classification entry of the config's ``models`` section: the fold trainer's keys
    and the classifier's own (head, sampler, how TTA views merge)."""

    backbone: str
    pooling: str = schema_field("models", "pooling")
    hidden: list[int] = schema_field("models", "hidden")
    drop_rate: float = schema_field("models", "drop_rate")
    sampler: str | dict | None = schema_field("models", "sampler")
    tta_merge: str = schema_field("models", "tta_merge")

    @classmethod
    def from_config(cls, entry: dict[str, Any], name: str = "<name>") -> TrainSettings:
        """The settings of a classification model entry; a segmentation model's key or an
        unknown key is refused by name rather than ignored."""
        problems = unknown_model_keys(entry, name, CLASSIFICATION) + [
            message for _, message in model_key_problems(entry, name)]
        if problems:
            raise PodiumInputError(" ".join(problems))
        return cls(**entry)


@dataclass(frozen=True)
class PseudoLabels:
    """Pseudo-labelled test images for a round-2 fold: the packed test split and the
    ``id, label`` table chosen from round-1 predictions of the same fold."""

    array: str | Path
    index: str | Path
    labels_csv: str | Path

    def load(self, spec: TaskSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(array, rows, encoded labels)``, as FoldTrainer takes further training rows."""
        table = pd.read_csv(self.labels_csv, dtype={"id": str, "label": str},
                            keep_default_na=False)
        row_of = pd.read_parquet(self.index).set_index("id")["row"]
        return (load_packed(self.array), row_of.loc[table["id"]].to_numpy(),
                spec.encode(table["label"]))


@dataclass(frozen=True)
class FoldOutputs:
    """Where a fold's results go."""

    weights: Path
    oof: Path
    history: Path
    metrics: Path


def _labels_of(spec: TaskSpec, manifest_path: str | Path, ids: pd.Series) -> np.ndarray:
    manifest = pd.read_parquet(manifest_path, columns=["id", TARGET_COLUMN])
    labels_by_id = dict(zip(manifest["id"], manifest[TARGET_COLUMN], strict=True))
    return spec.encode(ids.map(labels_by_id))


def stopping_metric(spec: TaskSpec, y_valid: np.ndarray, name: str, fold: int) -> Metric:
    """The metric early stopping follows: the competition's, unless it is undefined on the
    fold's validation rows (AUC of a fold holding one class), where log loss stands in, with
    a warning, rather than stopping on NaN."""
    metric = get_metric(spec.metric)
    if metric.name == "auc" and not auc_defined(y_valid, spec.n_classes):
        log.warning("models.%s fold %d: AUC is undefined on the validation rows (one class "
                    "only); early stopping follows logloss. Check the class counts against "
                    "folds.n_folds.", name, fold)
        return get_metric("logloss")
    return metric


def classifier_trainer(
    settings: TrainSettings, spec: TaskSpec, metric: Metric, train_images: np.ndarray,
    train_rows: np.ndarray, y_train: np.ndarray, in_chans: int, runtime: Runtime, fold: int,
    name: str, row_weights: np.ndarray | None = None,
    extra: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> FoldTrainer:
    """The fold trainer of a classification model: a timm classifier, the task's loss, the
    train rows (and ``extra``, ``(array, rows, labels)`` of pseudo-labelled test images,
    trained on like the train rows and never validated), drawn by the configured sampler or
    by ``row_weights`` (adversarial validation's)."""
    model = runtime.model(build_classifier(
        settings.backbone, spec.n_outputs, in_chans, settings.pretrained,
        pooling=settings.pooling, dropout=settings.drop_rate, hidden=list(settings.hidden),
    ))
    loss_fn = build_loss(settings.loss, spec, key=f"models.{name}.loss")
    augment = build_augmentation(settings.augment, settings.seed + fold)
    parts = [PackedImages(train_images, train_rows, y_train, augment)]
    if extra is not None and len(extra[1]):
        parts.append(PackedImages(*extra, augment))
        y_train = np.concatenate([y_train, extra[2]])
        if row_weights is not None:
            row_weights = np.concatenate([row_weights, np.ones(len(extra[1]))])
    generator = torch.Generator()
    sampler_name, params = parse_sampler(settings.sampler, f"models.{name}.sampler")
    if row_weights is not None and sampler_name not in (None, "random"):
        raise PodiumInputError(
            f"config key models.{name}.sampler: {sampler_name} cannot be combined with "
            "adversarial.weight_training; turn one of them off.")
    sampler = (
        torch.utils.data.WeightedRandomSampler(row_weights, len(row_weights),
                                               generator=generator)
        if row_weights is not None
        else build_sampler(sampler_name, y_train, generator, **params))
    data = TrainingData(parts, augment, to_targets=lambda targets: targets, sampler=sampler,
                        generator=generator, gathers_batches=True)
    return FoldTrainer(settings, model, loss_fn, data, runtime, fold,
                       metric.greater_is_better)


def train_fold(
    settings: TrainSettings,
    spec: TaskSpec,
    fold: int,
    train_array: str | Path,
    train_index: str | Path,
    folds_csv: str | Path,
    manifest_path: str | Path,
    outputs: FoldOutputs,
    threads: int = 1,
    resume_dir: str | Path | None = None,
    name: str | None = None,
    weights_csv: str | Path | None = None,
    pseudo: PseudoLabels | None = None,
) -> dict[str, Any]:
    """Fit on every fold but ``fold``, early-stop on the metric, predict OOF (test images are
    predicted by :func:`podium.tasks.classify.predict.predict_test_fold`, a job of its own,
    so new test images never retrain a model).

    With ``resume_dir`` each completed epoch is saved there and a rerun of the same job
    continues from it; the state is removed once the outputs are written. ``weights_csv``
    (``id, weight``, from adversarial validation) samples train rows by those weights;
    ``pseudo`` adds pseudo-labelled test images to the training rows."""
    name = name or settings.backbone
    views = build_tta(settings.tta, settings.tta_scales)
    check_merge(settings.tta_merge)
    if settings.accumulate_steps < 1:
        raise PodiumInputError(f"config key models.{name}.accumulate_steps must be >= 1.")
    seed_everything(epoch_seed(settings, fold, 0))
    torch.set_num_threads(max(1, threads))
    runtime = Runtime.detect(threads, settings.precision, settings.channels_last,
                             key=f"models.{name}.precision")
    space = spec.label_space
    secondary = get_metric("rmse" if spec.predicts_value else "logloss")  # logged each epoch

    # packed rows are in index order, so index positions are array rows
    index, train_rows, valid_rows = fold_rows(train_index, folds_csv, fold)
    y = _labels_of(spec, manifest_path, index["id"])
    metric = stopping_metric(spec, y[valid_rows], name, fold)

    train_images = load_packed(train_array)
    in_chans = train_images.shape[3]
    row_weights = None
    if weights_csv is not None:
        weight_of = pd.read_csv(weights_csv, dtype={"id": str}).set_index("id")["weight"]
        row_weights = index["id"].iloc[train_rows].map(weight_of).fillna(1.0).to_numpy()
        log.info("sampling train rows by adversarial weights (from %.2f to %.2f)",
                 row_weights.min(), row_weights.max())
    extra = pseudo.load(spec) if pseudo is not None else None
    if extra is not None:
        log.info("training on %d pseudo-labelled test images besides %d train images",
                 len(extra[1]), len(train_rows))
    trainer = classifier_trainer(settings, spec, metric, train_images, train_rows,
                                 y[train_rows], in_chans, runtime, fold, name, row_weights,
                                 extra)
    eval_batch = settings.batch_size * 2
    store = None
    if resume_dir is not None:
        store = ResumeStore(resume_dir, resume_key(
            {"settings": asdict(settings), "task": asdict(spec), "fold": fold, "name": name},
            [p for p in (train_array, train_index, folds_csv, manifest_path, weights_csv,
                         pseudo.labels_csv if pseudo is not None else None) if p is not None]))

    def evaluate(epoch: int) -> tuple[float, dict[str, float]]:
        proba = predict_proba(trainer.eval_model, train_images, valid_rows, runtime,
                              [TtaView("identity")], eval_batch, spec.output_kind)
        if not np.isfinite(proba).all():
            raise NonFiniteLoss(f"validation predictions are NaN after epoch {epoch + 1}")
        score = metric(y[valid_rows], proba, space)
        return score, {f"valid_{secondary.name}": secondary(y[valid_rows], proba, space),
                       f"valid_{metric.name}": score}

    result = run_epochs(
        trainer, evaluate, epochs=settings.epochs, patience=settings.patience,
        metric=metric.name, is_better=metric.is_better, best_model=lambda: trainer.eval_model,
        store=store, name=name, fold=fold,
        advice="Lower lr, set clip_grad_norm, or check the images and labels.",
        row_extras=lambda epoch: {"backbone_frozen": epoch < settings.freeze_backbone_epochs})
    history, best_state, start_epoch = result.history, result.best_state, result.start_epoch
    best_score, best_epoch, fit_seconds = result.best_score, result.best_epoch, result.fit_seconds

    predict_start = time.perf_counter()
    model = trainer.eval_model
    model.load_state_dict(best_state)
    oof = predict_proba(model, train_images, valid_rows, runtime, views, eval_batch,
                        spec.output_kind, settings.tta_merge)
    predict_seconds = time.perf_counter() - predict_start

    require_finite(oof, f"models.{name} fold {fold}: OOF")
    columns = spec.prediction_columns
    outputs.weights.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": best_state, "settings": asdict(settings),
                "num_outputs": spec.n_outputs, "in_chans": in_chans}, outputs.weights)
    write_parquet(pd.concat([index.loc[valid_rows, ["id"]].reset_index(drop=True),
                             pd.DataFrame(oof, columns=columns)], axis=1), outputs.oof)
    write_csv(pd.DataFrame(history), outputs.history)
    epochs_run = len(history) - start_epoch
    summary = {
        "fold": fold, "metric": metric.name, "best_epoch": best_epoch,
        "best_valid_score": best_score, "oof_score_tta": metric(y[valid_rows], oof, space),
        "tta": [v.label for v in views], "tta_merge": settings.tta_merge,
        "n_train": int(len(train_rows)), "n_valid": int(len(valid_rows)),
        "n_pseudo": int(len(extra[1])) if extra is not None else 0,
        "device": str(runtime.device), "precision": runtime.precision,
        "channels_last": runtime.channels_last, "threads": threads,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "resumed_from_epoch": start_epoch, "fit_seconds": fit_seconds,
        "predict_seconds": predict_seconds,
        "train_images_per_second": len(train_rows) * epochs_run / max(fit_seconds, 1e-9),
    }
    write_json(summary, outputs.metrics)
    if store is not None:
        store.clear()
    log.info("fold %d done: best %s %.4f at epoch %d, OOF with TTA %.4f", fold, metric.name,
             best_score, best_epoch, summary["oof_score_tta"])
    return summary


def train_fold_job(job: StageJob) -> dict[str, Any]:
    """:func:`train_fold` for one ``train_model`` job of a classification task (the entry
    point the classify plug-in registers): round-2 models also read their fold's pseudo
    labels, and weighted training adversarial validation's weights."""
    i, o = job.inputs, job.outputs
    pseudo = i.get("pseudo")
    return train_fold(
        TrainSettings.from_config(job.settings), TaskSpec.load(i["task"]), job.fold,
        i["train_array"], i["train_index"], i["folds"], i["manifest"],
        FoldOutputs(*(Path(o[key]) for key in ("weights", "oof", "history", "metrics"))),
        threads=job.threads, resume_dir=job.resume_dir, name=job.name,
        weights_csv=i.get("weights"),
        pseudo=PseudoLabels(i["test_array"], i["test_index"], pseudo) if pseudo else None,
    )


def predict_test_job(job: StageJob) -> dict[str, Any]:
    """:func:`~podium.tasks.classify.predict.predict_test_fold` for one ``predict_test`` job of a
    classification task."""
    i = job.inputs
    return predict_test_fold(
        TrainSettings.from_config(job.settings), TaskSpec.load(i["task"]), i["weights"],
        i["test_array"], i["test_index"], job.outputs["test"], threads=job.threads,
        name=job.name,
    )
