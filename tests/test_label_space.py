"""The competition's label space reaches every stage that decides or scores: CV, early
stopping, post-processing, the submission and the held-out score agree with each other."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import REPO
from sklearn.metrics import cohen_kappa_score, f1_score, roc_auc_score

from podium.ensemble.postprocess import make_postprocessor
from podium.errors import PodiumInputError
from podium.metrics import (
    METRICS,
    MULTILABEL_RULES,
    LabelSpace,
    NonFinitePredictions,
    get_metric,
)
from podium.submit.score import score_submission
from podium.task import TaskSpec
from podium.tasks.classify.entries import TrainTruth, cv_summary, gather_model, write_predictions
from podium.tasks.classify.fit import stopping_metric
from podium.tasks.classify.level2 import run_postprocess

MULTILABEL = TaskSpec(task="multilabel", target="tags", classes=("a", "b", "c"),
                      metric="f1_macro", id_column="id")
ORDINAL = TaskSpec(task="ordinal", target="grade", classes=("0", "1", "3", "4"), metric="qwk",
                   id_column="id")


def test_ordinal_label_space_is_the_full_grade_range() -> None:
    """Grade 2 is in no train row, yet it is a grade of the competition (Kaggle's QWK takes
    min_rating..max_rating)."""
    assert ORDINAL.label_space.grades == (0, 1, 2, 3, 4)
    np.testing.assert_array_equal(ORDINAL.grades(np.array([-1.0, 2.2, 9.0])), [0, 2, 4])
    assert MULTILABEL.label_space.grades is None
    assert MULTILABEL.label_space.multilabel_rule == "at_least_one"


def test_a_fold_without_the_top_grade_still_scores_over_predictions() -> None:
    truth = TrainTruth(pd.Series(list("abcdefgh")), np.array([0, 1, 2, 2, 0, 1, 3, 4.0]),
                       np.array([0, 0, 0, 0, 1, 1, 1, 1]))
    pred = np.array([[0.0], [1.0], [3.0], [4.0], [0.0], [1.0], [3.0], [4.0]])
    summary = cv_summary("m", "model", truth, pred, "qwk", ORDINAL.label_space)
    expected = cohen_kappa_score([0, 1, 2, 2], [0, 1, 3, 4], weights="quadratic",
                                 labels=range(5))
    assert summary["fold_scores"][0] == pytest.approx(expected)
    assert summary["fold_scores"][1] == pytest.approx(1.0)
    assert summary["fold_scores"][0] < 0.9  # clipping to the fold's grades would say 1.0


def test_ordinal_cut_points_use_the_competition_grades() -> None:
    """Fitted on rows that hold grades 0, 1, 3 and 4 only, the cut points still cover 2."""
    made = make_postprocessor("ordinal_cutpoints", {}, ORDINAL.label_space)
    y = np.array([0, 1, 3, 4, 0, 1, 3, 4], dtype=float)
    fitted = made.fit(y[:, None] + 0.1, y)
    assert fitted.grades_.tolist() == [0, 1, 2, 3, 4]
    assert len(fitted.cut_points_) == 4


def test_multilabel_cv_scores_what_the_submission_writes(tmp_path) -> None:
    """A row with no class at 0.5 is submitted with its most likely class; CV scores that
    same set, and the held-out scorer compares sets, not strings."""
    proba = np.array([[0.9, 0.2, 0.1], [0.3, 0.4, 0.1], [0.1, 0.6, 0.7]])
    y = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 1]])
    submitted = MULTILABEL.decode(proba)
    assert submitted == ["a", "b", "b c"]
    assert get_metric("accuracy")(y, proba, MULTILABEL.label_space) == 1.0
    decided = MULTILABEL.decide(proba)
    assert get_metric("f1_macro")(y, proba, MULTILABEL.label_space) == pytest.approx(
        f1_score(y, decided, average="macro", zero_division=0.0))
    independent = LabelSpace(multilabel_rule="independent")
    assert get_metric("accuracy")(y, proba, independent) == pytest.approx(2 / 3)

    ids = ["x", "y", "z"]
    pd.DataFrame({"id": ids, "tags": ["a", "b", "c b"]}).to_csv(tmp_path / "solution.csv",
                                                              index=False)
    pd.DataFrame({"id": ids, "tags": submitted}).to_csv(tmp_path / "submission.csv", index=False)
    score = score_submission(tmp_path / "submission.csv", tmp_path / "solution.csv", MULTILABEL)
    assert score == {"metric": "f1_macro", "score": 1.0, "n": 3}


def test_thresholds_follow_the_multilabel_rule() -> None:
    made = make_postprocessor("thresholds_f1", {}, MULTILABEL.label_space)
    assert made.at_least_one
    with pytest.raises(PodiumInputError, match=r"postprocess\.thresholds_f1\.params\."
                                               r"at_least_one.*multilabel_rule"):
        make_postprocessor("thresholds_f1", {"at_least_one": False}, MULTILABEL.label_space)
    free = make_postprocessor("thresholds_f1", {"at_least_one": False},
                              LabelSpace(multilabel_rule="independent"))
    assert not free.at_least_one


def test_postprocessed_multilabel_entry_never_scores_an_empty_set(tmp_path) -> None:
    rng = np.random.default_rng(0)
    n = 60
    y = (rng.random((n, 3)) < 0.3).astype(int)
    y[np.arange(n), rng.integers(0, 3, n)] = 1
    proba = np.clip(y * 0.4 + rng.random((n, 3)) * 0.5, 0, 1)
    ids = pd.Series([f"r{i}" for i in range(n)])
    truth = TrainTruth(ids, y, np.arange(n) % 2)
    columns = MULTILABEL.prediction_columns
    pd.DataFrame(proba, columns=columns).assign(id=ids).to_parquet(tmp_path / "oof.parquet")
    pd.DataFrame(proba[:5], columns=columns).assign(id=ids[:5]).to_parquet(
        tmp_path / "test.parquet")
    out = {k: tmp_path / f"out_{k}.{e}" for k, e in
           (("oof", "parquet"), ("test", "parquet"), ("cv", "json"))}
    run_postprocess("m+f1", "m", "thresholds_f1", {}, MULTILABEL, truth, tmp_path / "oof.parquet",
                    tmp_path / "test.parquet", out)
    decisions = pd.read_parquet(out["oof"])[columns].to_numpy()
    assert decisions.sum(axis=1).min() >= 1


def test_non_finite_predictions_stop_the_entry_and_write_nothing(tmp_path) -> None:
    spec = TaskSpec(task="binary", target="label", classes=("0", "1"), metric="auc",
                    id_column="id")
    truth = TrainTruth(pd.Series(list("abcd")), np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1]))
    oof = np.array([[0.8, 0.2], [0.1, 0.9], [np.nan, np.nan], [0.3, 0.7]])
    out = {k: tmp_path / f"{k}.x" for k in ("oof", "test", "cv")}
    with pytest.raises(NonFinitePredictions, match=r"stacker lgb: OOF: 1 of 4 prediction rows"):
        write_predictions("lgb", "stacker", spec, truth, pd.Series(["t"]), oof,
                          np.array([[0.5, 0.5]]), out)
    assert not any(p.exists() for p in out.values())


def test_gather_names_the_model_and_fold_of_non_finite_predictions(tmp_path) -> None:
    spec = TaskSpec(task="binary", target="label", classes=("0", "1"), metric="auc",
                    id_column="id")
    truth = TrainTruth(pd.Series(list("abcd")), np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1]))
    paths = {"oof": [], "test": []}
    for k, rows in enumerate((["a", "b"], ["c", "d"])):
        oof = pd.DataFrame({"id": rows, "p_0": [0.5, 0.5], "p_1": [0.5, np.inf if k else 0.5]})
        test = pd.DataFrame({"id": ["t"], "p_0": [0.5], "p_1": [0.5]})
        for kind, frame in (("oof", oof), ("test", test)):
            paths[kind].append(tmp_path / f"{kind}{k}.parquet")
            frame.to_parquet(paths[kind][-1])
    with pytest.raises(NonFinitePredictions, match=r"model m fold 1: OOF: 1 of 2"):
        gather_model("m", spec, truth, paths["oof"], paths["test"], tmp_path / "o.parquet",
                     tmp_path / "t.parquet", tmp_path / "cv.json")


def test_auc_of_a_one_class_fold_is_left_out_of_cv_not_nan() -> None:
    truth = TrainTruth(pd.Series(list("abcdef")), np.array([0, 0, 0, 0, 1, 1]),
                       np.array([0, 0, 1, 1, 1, 1]))
    p1 = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.2])
    summary = cv_summary("m", "model", truth, np.column_stack([1 - p1, p1]), "auc")
    assert np.isnan(summary["fold_scores"][0]) and summary["undefined_folds"] == [0]
    assert summary["cv_mean"] == pytest.approx(roc_auc_score([0, 0, 1, 1], p1[2:]))  # fold 1


def test_early_stopping_on_a_one_class_fold_follows_logloss() -> None:
    spec = TaskSpec(task="binary", target="label", classes=("0", "1"), metric="auc",
                    id_column="id")
    assert stopping_metric(spec, np.array([0, 0, 0]), "m", 0).name == "logloss"
    assert stopping_metric(spec, np.array([0, 1, 0]), "m", 0).name == "auc"


def test_schema_enums_are_the_code_registries() -> None:
    import yaml

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    competition = schema["properties"]["competition"]["properties"]
    assert set(competition["metric"]["enum"]) == set(METRICS)
    assert set(competition["multilabel_rule"]["enum"]) == set(MULTILABEL_RULES)


def test_non_finite_mask_maps_stop_the_segmentation_entry(tmp_path) -> None:
    from types import SimpleNamespace

    from podium.tasks.segment.entries import SegmentTruth, write_entry

    masks = np.zeros((4, 8, 8), dtype=np.uint8)
    truth = SegmentTruth(np.array(list("abcd")), np.arange(4), np.array([0, 0, 1, 1]), masks)
    oof = np.zeros((4, 1, 8, 8), dtype=np.float32)
    oof[2, 0, 3, 3] = np.nan
    out = SimpleNamespace(**{k: tmp_path / f"{k}.x" for k in
                             ("oof_probs", "test_probs", "oof", "test", "cv")})
    with pytest.raises(NonFinitePredictions, match=r"blend mean: OOF maps: 1 of 4"):
        write_entry("mean", "blend", truth, oof, np.zeros((2, 1, 8, 8)), np.array(["t", "u"]),
                    out)
    assert not any(p.exists() for p in vars(out).values())
