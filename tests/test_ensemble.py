"""Blends, stackers, gathering, leaderboard and submission on constructed predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from podium.ensemble.blend import MeanBlend, make_blend
from podium.ensemble.stack import STACKERS, make_stacker, stack_out_of_fold
from podium.errors import PodiumInputError
from podium.submit.leaderboard import build_leaderboard
from podium.submit.submission import apply_leak_labels, format_submission
from podium.tables import read_json, write_json
from podium.task import TaskSpec
from podium.tasks.classify.entries import TrainTruth, cv_summary, gather_model

SPEC = TaskSpec(task="multiclass", target="label", classes=("a", "b", "c"), metric="accuracy",
                id_column="id")


def _truth(n: int = 90, n_folds: int = 3, seed: int = 0) -> TrainTruth:
    rng = np.random.default_rng(seed)
    return TrainTruth(pd.Series([f"r{i}" for i in range(n)]), rng.integers(0, 3, n),
                      np.arange(n) % n_folds)


def _noisy_proba(y: np.ndarray, noise: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = np.eye(3)[y] * 2 + rng.normal(0, noise, (len(y), 3))
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("library", sorted(STACKERS))
def test_stacker_oof_ignores_held_out_labels(library):
    """Fold k's OOF must not move when fold k's labels change: no row sees its own label."""
    truth = _truth()
    features = np.hstack([_noisy_proba(truth.y, 1.0, 1), _noisy_proba(truth.y, 1.5, 2)])
    test_features = features[:7]
    params = {"lightgbm": {"n_estimators": 20, "min_child_samples": 3},
              "xgboost": {"n_estimators": 20}, "catboost": {"iterations": 20},
              "linear": {}, "logistic": {}}[library]

    def fit(y):
        return stack_out_of_fold(lambda: make_stacker(library, params, 0, 1), features, y,
                                 truth.fold, test_features, 3)

    oof, test = fit(truth.y)
    assert oof.shape == (90, 3) and test.shape == (7, 3)
    np.testing.assert_allclose(oof.sum(axis=1), 1.0, atol=1e-6)
    scrambled = truth.y.copy()
    held = truth.fold == 1
    scrambled[held] = (scrambled[held] + 1) % 3
    oof2, _ = fit(scrambled)
    np.testing.assert_array_equal(oof2[held], oof[held])
    assert not np.allclose(oof2[~held], oof[~held])


def test_stacker_with_a_missing_class_still_predicts_all_columns():
    y = np.array([0, 1, 0, 1, 0, 1, 2, 2])
    fold = np.array([1, 1, 1, 1, 1, 1, 0, 0])  # training rows for fold 0 lack class 2
    features = np.eye(3)[y] + 0.01
    oof, _ = stack_out_of_fold(lambda: make_stacker("logistic", {}, 0, 1), features, y, fold,
                               features[:2], 3)
    assert oof.shape == (8, 3)
    np.testing.assert_array_equal(oof[fold == 0][:, 2], 0.0)


def test_unknown_stacker_lists_close_names():
    with pytest.raises(PodiumInputError, match="lightgbm"):
        make_stacker("lightgmb", {})
    with pytest.raises(PodiumInputError, match="params"):
        make_stacker("logistic", {"not_a_param": 1})


def test_mean_blend_and_unknown_blend():
    a, b = np.array([[0.2, 0.8]]), np.array([[0.6, 0.4]])
    np.testing.assert_allclose(MeanBlend().fit([a, b], None).predict_proba([a, b]),
                               [[0.4, 0.6]])
    with pytest.raises(PodiumInputError, match="mean"):
        make_blend("maen")


def test_gather_orders_oof_like_folds_and_averages_test(tmp_path):
    truth = _truth(n=6, n_folds=2)
    proba = _noisy_proba(truth.y, 0.1, 0)
    fold_oofs, fold_tests = [], []
    for k in (0, 1):
        rows = np.flatnonzero(truth.fold == k)[::-1]
        oof = pd.DataFrame(proba[rows], columns=SPEC.prediction_columns)
        oof.insert(0, "id", truth.ids[rows].to_numpy())
        test = pd.DataFrame(np.full((2, 3), 0.2 + 0.2 * k), columns=SPEC.prediction_columns)
        test.insert(0, "id", ["t1", "t0"] if k else ["t0", "t1"])
        for frame, name, paths in ((oof, "oof", fold_oofs), (test, "test", fold_tests)):
            path = tmp_path / f"{name}{k}.parquet"
            frame.to_parquet(path)
            paths.append(path)
    gather_model("m", SPEC, truth, fold_oofs, fold_tests, tmp_path / "oof.parquet",
                 tmp_path / "test.parquet", tmp_path / "cv.json")
    oof = pd.read_parquet(tmp_path / "oof.parquet")
    assert list(oof["id"]) == list(truth.ids)
    np.testing.assert_allclose(oof[SPEC.prediction_columns].to_numpy(), proba)
    test = pd.read_parquet(tmp_path / "test.parquet")
    np.testing.assert_allclose(test[SPEC.prediction_columns].to_numpy(), 0.3)
    cv = read_json(tmp_path / "cv.json")
    assert cv["cv_mean"] == pytest.approx(1.0) and cv["kind"] == "model"


def test_cv_summary_is_mean_and_std_over_folds():
    truth = TrainTruth(pd.Series(list("abcd")), np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1]))
    proba = np.array([[0.9, 0.1, 0], [0.2, 0.8, 0], [0.1, 0.9, 0], [0.3, 0.7, 0]])
    summary = cv_summary("x", "model", truth, proba, "accuracy")
    assert summary["fold_scores"] == [1.0, 0.5]
    assert summary["cv_mean"] == 0.75 and summary["cv_std"] == 0.25


@pytest.mark.parametrize(("metric", "best"), [("accuracy", "high"), ("logloss", "low")])
def test_leaderboard_sorts_by_metric_direction(tmp_path, metric, best):
    paths = []
    for name, score in (("low", 0.1), ("high", 0.9), ("mid", 0.5)):
        path = tmp_path / f"{name}.json"
        write_json({"name": name, "kind": "model", "metric": metric, "cv_mean": score,
                    "cv_std": 0.0}, path)
        paths.append(path)
    board = build_leaderboard(paths)
    assert list(board.columns) == ["name", "kind", "metric", "cv_mean", "cv_std"]
    assert board["name"].iloc[0] == best and board["name"].iloc[1] == "mid"


def test_submission_follows_sample_format():
    predictions = pd.DataFrame({"id": ["x", "y"], "p_a": [0.7, 0.1], "p_b": [0.2, 0.1],
                                "p_c": [0.1, 0.8]})
    labels = format_submission(pd.DataFrame({"id": ["y", "x"], "label": ["a", "a"]}),
                               predictions, SPEC)
    assert labels.to_dict("list") == {"id": ["y", "x"], "label": ["c", "a"]}
    probs = format_submission(pd.DataFrame({"id": ["x"], "a": [0], "c": [0]}), predictions,
                              SPEC)
    assert probs.to_dict("list") == {"id": ["x"], "a": [0.7], "c": [0.1]}
    with pytest.raises(PodiumInputError, match="'Target'"):
        format_submission(pd.DataFrame({"id": ["x"], "Target": [0]}), predictions, SPEC)


MULTILABEL = TaskSpec(task="multilabel", target="label", classes=("a", "b", "c"),
                      metric="f1_macro", id_column="id")


def test_multilabel_stackers_fit_one_binary_model_per_class_without_own_labels():
    """Per-class stackers: probabilities are independent (rows need not sum to 1), and a
    fold's OOF does not move when that fold's labels change."""
    rng = np.random.default_rng(0)
    y = (rng.random((90, 3)) < [0.5, 0.3, 0.7]).astype(int)
    fold = np.arange(90) % 3
    features = np.clip(y + rng.normal(0, 0.25, y.shape), 0, 1)

    def fit(labels):
        return stack_out_of_fold(lambda: make_stacker("logistic", {}, 0, 1), features, labels,
                                 fold, features[:5], 3)

    oof, test = fit(y)
    assert oof.shape == (90, 3) and test.shape == (5, 3)
    assert not np.allclose(oof.sum(axis=1), 1.0)
    assert ((oof > 0.5) == y).mean() > 0.9
    scrambled = y.copy()
    scrambled[fold == 2] = 1 - scrambled[fold == 2]
    np.testing.assert_array_equal(fit(scrambled)[0][fold == 2], oof[fold == 2])


def test_multilabel_encode_decode_and_submission():
    labels = MULTILABEL.encode(pd.Series(["a c", "b", "c a"]))
    np.testing.assert_array_equal(labels, [[1, 0, 1], [0, 1, 0], [1, 0, 1]])
    proba = np.array([[0.9, 0.2, 0.6], [0.1, 0.3, 0.2], [0.5, 0.5, 0.5]])
    # row 2: nothing reaches 0.5, so the most likely class alone
    assert MULTILABEL.decode(proba) == ["a c", "b", "a b c"]
    predictions = pd.DataFrame({"id": ["x", "y", "z"], "p_a": proba[:, 0], "p_b": proba[:, 1],
                                "p_c": proba[:, 2]})
    sample = pd.DataFrame({"id": ["z", "x", "y"], "label": ["a"] * 3})
    submission = format_submission(sample, predictions, MULTILABEL)
    assert submission.to_dict("list") == {"id": ["z", "x", "y"],
                                          "label": ["a b c", "a c", "b"]}


def test_multilabel_leak_labels_copy_the_whole_set():
    predictions = pd.DataFrame({"id": ["x", "y"], "p_a": [0.2, 0.2], "p_b": [0.2, 0.2],
                                "p_c": [0.2, 0.2]})
    leaks = pd.DataFrame({"test_id": ["x"], "train_label": ["a c"], "label_conflict": [False]})
    out = apply_leak_labels(predictions, leaks, MULTILABEL)
    assert out.loc[0, ["p_a", "p_b", "p_c"]].tolist() == [1.0, 0.0, 1.0]
    assert out.loc[1, ["p_a", "p_b", "p_c"]].tolist() == [0.2, 0.2, 0.2]


@pytest.mark.parametrize("library", ["lightgbm", "linear"])
def test_value_stackers_regress_without_own_labels(library):
    """Regression and ordinal targets get regressors with one pred column, fold by fold."""
    rng = np.random.default_rng(0)
    y = rng.normal(size=90)
    fold = np.arange(90) % 3
    features = np.stack([y + rng.normal(0, 0.3, 90), y + rng.normal(0, 0.5, 90)], axis=1)

    def fit(target):
        params = {"n_estimators": 30, "min_child_samples": 3} if library == "lightgbm" else {}
        return stack_out_of_fold(lambda: make_stacker(library, params, 0, 1, regression=True),
                                 features, target, fold, features[:4], 1)

    oof, test = fit(y)
    assert oof.shape == (90, 1) and test.shape == (4, 1)
    assert np.corrcoef(oof[:, 0], y)[0, 1] > 0.8
    shifted = y.copy()
    shifted[fold == 0] += 5.0
    np.testing.assert_array_equal(fit(shifted)[0][fold == 0], oof[fold == 0])
