"""Run a blend or a stacker over every model's predictions and write it like a model."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from podium.ensemble.blend import make_blend
from podium.ensemble.oof import TrainTruth, aligned_proba, write_predictions
from podium.ensemble.stack import make_stacker, stack_features, stack_out_of_fold
from podium.task import TaskSpec


def _load(paths: dict[str, str | Path]) -> dict[str, pd.DataFrame]:
    return {name: pd.read_parquet(path) for name, path in paths.items()}


def run_blend(name: str, method: str, spec: TaskSpec, truth: TrainTruth,
              model_oofs: dict[str, str | Path], model_tests: dict[str, str | Path],
              out: dict[str, str | Path]) -> dict:
    """Blend the models' OOF and test probabilities."""
    columns = spec.prediction_columns
    oofs, tests = _load(model_oofs), _load(model_tests)
    test_ids = next(iter(tests.values()))["id"]
    oof_list = [aligned_proba(oofs[m], truth.ids, columns) for m in sorted(oofs)]
    test_list = [aligned_proba(tests[m], test_ids, columns) for m in sorted(tests)]
    blend = make_blend(method).fit(oof_list, truth.y)
    return write_predictions(name, "blend", spec, truth, test_ids, blend.predict_proba(oof_list),
                  blend.predict_proba(test_list), out)


def run_stacker(name: str, library: str, params: dict, seed: int, threads: int,
                spec: TaskSpec, truth: TrainTruth, model_oofs: dict[str, str | Path],
                model_tests: dict[str, str | Path], out: dict[str, str | Path]) -> dict:
    """Fit the stacker fold by fold on the models' OOF and predict OOF and test."""
    columns = spec.prediction_columns
    oofs, tests = _load(model_oofs), _load(model_tests)
    test_ids = next(iter(tests.values()))["id"]
    features = stack_features(oofs, truth.ids, columns)
    test_features = stack_features(tests, test_ids, columns)
    regression = spec.predicts_value
    make_stacker(library, params, seed, threads, regression)  # fail on bad config before fitting
    oof, test = stack_out_of_fold(
        lambda: make_stacker(library, params, seed, threads, regression), features, truth.y,
        truth.fold, test_features, spec.n_classes)
    return write_predictions(name, "stacker", spec, truth, test_ids, oof, test, out)
