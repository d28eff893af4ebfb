"""Run a blend, a stacker or a post-processor over predictions and write the result like
a model, so that every one of them competes on the leaderboard."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from podium.ensemble.blend import blend_out_of_fold, make_blend
from podium.ensemble.postprocess import make_postprocessor, postprocess_out_of_fold
from podium.ensemble.stack import make_stacker, stack_features, stack_out_of_fold
from podium.glue import StageJob
from podium.task import TaskSpec
from podium.tasks.classify.entries import TrainTruth, aligned_proba, write_predictions


def _load(paths: dict[str, str | Path]) -> dict[str, pd.DataFrame]:
    return {name: pd.read_parquet(path) for name, path in paths.items()}


def run_blend(name: str, method: str, params: dict, spec: TaskSpec, truth: TrainTruth,
              model_oofs: dict[str, str | Path], model_tests: dict[str, str | Path],
              out: dict[str, str | Path]) -> dict:
    """Blend the models' OOF and test probabilities; blends that learn weights from labels
    are fitted fold by fold, so no OOF row is blended with weights that saw its label."""
    columns = spec.prediction_columns
    oofs, tests = _load(model_oofs), _load(model_tests)
    test_ids = next(iter(tests.values()))["id"]
    models = sorted(oofs)
    oof_list = [aligned_proba(oofs[m], truth.ids, columns) for m in models]
    test_list = [aligned_proba(tests[m], test_ids, columns) for m in models]
    space = spec.label_space
    make_blend(method, params, spec.metric, space)  # fail on bad config before any fitting
    oof, test, info = blend_out_of_fold(lambda: make_blend(method, params, spec.metric, space),
                                        oof_list, truth.y, truth.fold, test_list)
    return write_predictions(name, "blend", spec, truth, test_ids, oof, test, out,
                             {"models": models, **info})


META_FEATURES = ("height", "width", "aspect", "channels")


def meta_features(manifest: pd.DataFrame, ids: pd.Series) -> np.ndarray:
    """Simple per-image facts a stacker can combine with the predictions: the original
    height, width, aspect ratio and channels (a model at a fixed size cannot see them)."""
    rows = manifest.set_index("id").loc[ids]
    return np.column_stack([rows["height"], rows["width"], rows["width"] / rows["height"],
                            rows["channels"]]).astype(np.float64)


def run_stacker(name: str, library: str, params: dict, seed: int, threads: int,
                spec: TaskSpec, truth: TrainTruth, model_oofs: dict[str, str | Path],
                model_tests: dict[str, str | Path], out: dict[str, str | Path],
                manifest_path: str | Path | None = None) -> dict:
    """Fit the stacker fold by fold on the models' OOF (plus, with ``manifest_path``, the
    images' :func:`meta_features`) and predict OOF and test."""
    columns = spec.prediction_columns
    oofs, tests = _load(model_oofs), _load(model_tests)
    test_ids = next(iter(tests.values()))["id"]
    features = stack_features(oofs, truth.ids, columns)
    test_features = stack_features(tests, test_ids, columns)
    if manifest_path is not None:
        manifest = pd.read_parquet(manifest_path, columns=["id", "height", "width", "channels"])
        features = np.hstack([features, meta_features(manifest, truth.ids)])
        test_features = np.hstack([test_features, meta_features(manifest, test_ids)])
    regression = spec.predicts_value
    make_stacker(library, params, seed, threads, regression)  # fail on bad config before fitting
    oof, test = stack_out_of_fold(
        lambda: make_stacker(library, params, seed, threads, regression), features, truth.y,
        truth.fold, test_features, spec.n_classes)
    details = {"meta_features": list(META_FEATURES)} if manifest_path is not None else None
    return write_predictions(name, "stacker", spec, truth, test_ids, oof, test, out, details)


def decisions_as_predictions(decisions: np.ndarray, spec: TaskSpec) -> np.ndarray:
    """Post-processed decisions in the prediction contract's shape: grades as the ``pred``
    column, binary class indices one-hot over ``p_<class>``, 0/1 matrices as they are."""
    decisions = np.asarray(decisions, dtype=np.float64)
    if decisions.ndim == 2:
        return decisions
    if spec.predicts_value:
        return decisions[:, None]
    return np.eye(spec.n_classes)[decisions.astype(np.int64)]


def run_postprocess(name: str, entry: str, method: str, params: dict, spec: TaskSpec,
                    truth: TrainTruth, entry_oof: str | Path, entry_test: str | Path,
                    out: dict[str, str | Path]) -> dict:
    """Fit a post-processor on an entry's OOF fold by fold (honest CV), refit it on all OOF
    for test, and write the result as an entry of its own with the fitted parameters."""
    columns = spec.prediction_columns
    oof_frame, test_frame = pd.read_parquet(entry_oof), pd.read_parquet(entry_test)
    values = aligned_proba(oof_frame, truth.ids, columns)
    test_values = test_frame[columns].to_numpy(dtype=np.float64)
    space = spec.label_space
    make_postprocessor(method, params, space)  # fail on bad config before any fitting
    oof, test, fitted = postprocess_out_of_fold(lambda: make_postprocessor(method, params, space),
                                                values, truth.y, truth.fold, test_values)
    return write_predictions(
        name, "postprocess", spec, truth, test_frame["id"],
        decisions_as_predictions(oof, spec), decisions_as_predictions(test, spec), out,
        {"entry": entry, "method": method, "fitted": fitted})


def _truth(job: StageJob) -> tuple[TaskSpec, TrainTruth]:
    spec = TaskSpec.load(job.inputs["task"])
    return spec, TrainTruth.load(job.inputs["folds"], job.inputs["manifest"], spec)


def _by_model(job: StageJob, key: str) -> dict[str, str | Path]:
    return dict(zip(job.options["models"], job.inputs[key], strict=True))


def blend_job(job: StageJob) -> dict:
    """A classification competition's ``blend_models`` job."""
    spec, truth = _truth(job)
    return run_blend(job.name, job.settings["method"], job.settings.get("params") or {}, spec,
                     truth, _by_model(job, "oofs"), _by_model(job, "tests"), dict(job.outputs))


def stack_job(job: StageJob) -> dict:
    """A classification competition's ``stack_models`` job."""
    spec, truth = _truth(job)
    settings = job.settings
    return run_stacker(job.name, settings["library"], settings.get("params", {}),
                       job.options["seed"], job.threads, spec, truth, _by_model(job, "oofs"),
                       _by_model(job, "tests"), dict(job.outputs),
                       job.inputs["images"] if settings.get("meta_features") else None)


def postprocess_job(job: StageJob) -> dict:
    """A classification competition's ``postprocess_predictions`` job."""
    spec, truth = _truth(job)
    settings = job.settings
    return run_postprocess(job.name, job.options["source"], settings["method"],
                           settings.get("params") or {}, spec, truth, job.inputs["oof"],
                           job.inputs["test"], dict(job.outputs))
