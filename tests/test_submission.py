"""What the submission's columns hold (the metric decides, submission.values overrides), the
check that refuses a bad submission before it is written, and the held-out score of a
probability submission."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

from podium.errors import PodiumInputError
from podium.submit.check import check_submission, check_table
from podium.submit.score import score_submission
from podium.submit.submission import format_submission, target_column
from podium.task import TaskSpec


def _spec(task: str = "binary", metric: str = "auc", classes=("neg", "pos")) -> TaskSpec:
    return TaskSpec(task=task, target="label", classes=tuple(classes), metric=metric,
                    id_column="id")


def _binary_predictions(positive: list[float], ids=None) -> pd.DataFrame:
    ids = ids or [f"i{k}" for k in range(len(positive))]
    p = np.asarray(positive)
    return pd.DataFrame({"id": ids, "p_neg": 1.0 - p, "p_pos": p})


BINARY_SAMPLE = pd.DataFrame({"id": ["i2", "i0", "i1"], "label": ["0.5"] * 3})
MULTICLASS_PREDICTIONS = pd.DataFrame({"id": ["x", "y"], "p_a": [0.7, 0.1], "p_b": [0.2, 0.1],
                                       "p_c": [0.1, 0.8]})


# ------------------------------------------------------------------ which values, and why


def test_auc_binary_target_column_gets_the_positive_class_probability(caplog):
    spec = _spec(metric="auc")
    with caplog.at_level(logging.INFO, logger="podium.submit.submission"):
        out = format_submission(BINARY_SAMPLE, _binary_predictions([0.1, 0.8, 0.35]), spec)
    assert out.to_dict("list") == {"id": ["i2", "i0", "i1"], "label": [0.35, 0.1, 0.8]}
    assert "probability of the positive class 'pos'" in caplog.text
    assert "metric auc scores probabilities" in caplog.text
    check_submission(out, BINARY_SAMPLE, spec)


def test_logloss_is_a_probability_metric_too():
    column = target_column(_spec(metric="logloss"))
    assert column.is_probability and column.class_index == 1


@pytest.mark.parametrize("metric", ["accuracy", "f1_macro", "qwk"])
def test_label_metric_binary_target_column_gets_labels(metric, caplog):
    with caplog.at_level(logging.INFO, logger="podium.submit.submission"):
        out = format_submission(BINARY_SAMPLE, _binary_predictions([0.1, 0.8, 0.35]),
                                _spec(metric=metric))
    assert out["label"].tolist() == ["neg", "neg", "pos"]
    assert f"metric {metric} scores labels" in caplog.text


def test_values_override_both_ways():
    predictions = _binary_predictions([0.1, 0.8, 0.35])
    labels = format_submission(BINARY_SAMPLE, predictions, _spec(metric="auc"), values="label")
    assert labels["label"].tolist() == ["neg", "neg", "pos"]
    probs = format_submission(BINARY_SAMPLE, predictions, _spec(metric="accuracy"),
                              values="probability")
    assert probs["label"].tolist() == [0.35, 0.1, 0.8]
    assert "submission.values: probability" in target_column(_spec(metric="accuracy"),
                                                             "probability").reason
    with pytest.raises(PodiumInputError, match="submission.values: 'probabilities'"):
        target_column(_spec(), "probabilities")


@pytest.mark.parametrize("metric", ["auc", "logloss"])
def test_multiclass_target_column_keeps_labels_under_a_probability_metric(metric, caplog):
    """One column cannot hold three classes' probabilities: labels, with a warning saying so;
    forcing probabilities is an error naming the config key."""
    spec = _spec("multiclass", metric, ("a", "b", "c"))
    sample = pd.DataFrame({"id": ["y", "x"], "label": ["a", "a"]})
    with caplog.at_level(logging.INFO, logger="podium.submit.submission"):
        out = format_submission(sample, MULTICLASS_PREDICTIONS, spec)
    assert out["label"].tolist() == ["c", "a"]
    warning = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning and "cannot hold the 3 classes' probabilities" in warning[0].getMessage()
    with pytest.raises(PodiumInputError, match="config key submission.values: probability"):
        format_submission(sample, MULTICLASS_PREDICTIONS, spec, values="probability")


def test_class_columns_keep_getting_probabilities_under_a_label_metric():
    spec = _spec("multiclass", "accuracy", ("a", "b", "c"))
    sample = pd.DataFrame({"id": ["x"], "a": ["0"], "p_b": ["0"], "c": ["0"]})
    out = format_submission(sample, MULTICLASS_PREDICTIONS, spec, values="label")
    assert out.to_dict("list") == {"id": ["x"], "a": [0.7], "p_b": [0.2], "c": [0.1]}
    check_submission(out, sample, spec, values="label")


@pytest.mark.parametrize("task", ["regression", "ordinal"])
def test_value_tasks_hold_their_value_and_refuse_probabilities(task):
    spec = _spec(task, "rmse", ("0", "1", "2") if task == "ordinal" else ())
    assert not target_column(spec).is_probability
    with pytest.raises(PodiumInputError, match="cannot hold probabilities"):
        target_column(spec, "probability")


# ------------------------------------------------------------------ the submission check


def _good_binary():
    spec = _spec()
    out = format_submission(BINARY_SAMPLE, _binary_predictions([0.1, 0.8, 0.35]), spec)
    return out, spec


@pytest.mark.parametrize(("value", "problem"), [
    (np.nan, "is empty"), (1.5, "is not a probability in"), (-0.1, "is not a probability"),
    (np.inf, "is not a probability"), ("high", "is not a probability"),
])
def test_check_refuses_bad_probabilities_naming_line_id_and_column(value, problem):
    out, spec = _good_binary()
    out["label"] = out["label"].astype(object)
    out.loc[1, "label"] = value
    with pytest.raises(PodiumInputError) as err:
        check_submission(out, BINARY_SAMPLE, spec)
    message = str(err.value)
    assert "submission line 3 (id 'i0'), column 'label'" in message  # header is line 1
    assert problem in message and "nothing was written" in message


def test_check_refuses_an_unknown_label():
    spec = _spec(metric="accuracy")
    out = format_submission(BINARY_SAMPLE, _binary_predictions([0.1, 0.8, 0.35]), spec)
    out.loc[2, "label"] = "maybe"
    with pytest.raises(PodiumInputError,
                       match=r"line 4 \(id 'i1'\), column 'label': 'maybe' is not a class"):
        check_submission(out, BINARY_SAMPLE, spec)


def test_check_refuses_an_empty_label_and_counts_the_others():
    spec = _spec(metric="accuracy")
    out = format_submission(BINARY_SAMPLE, _binary_predictions([0.1, 0.8, 0.35]), spec)
    out["label"] = ["neg", " ", ""]
    with pytest.raises(PodiumInputError, match=r"line 3 .* is empty \(1 more rows like it\)"):
        check_submission(out, BINARY_SAMPLE, spec)


def test_check_refuses_ids_out_of_order_or_missing_rows():
    out, spec = _good_binary()
    swapped = out.iloc[[1, 0, 2]].reset_index(drop=True)
    with pytest.raises(PodiumInputError,
                       match=r"line 2 \(id 'i0'\), column 'id': the sample submission has id "
                             r"'i2' on this line"):
        check_submission(swapped, BINARY_SAMPLE, spec)
    with pytest.raises(PodiumInputError, match="2 rows, the sample submission 3"):
        check_submission(out.iloc[:2], BINARY_SAMPLE, spec)


def test_check_refuses_missing_extra_or_reordered_columns():
    out, spec = _good_binary()
    with pytest.raises(PodiumInputError, match=r"missing \['label'\]"):
        check_submission(out[["id"]], BINARY_SAMPLE, spec)
    with pytest.raises(PodiumInputError, match=r"not in the sample \['extra'\]"):
        check_submission(out.assign(extra=1), BINARY_SAMPLE, spec)
    with pytest.raises(PodiumInputError, match="not the sample submission's"):
        check_submission(out[["label", "id"]], BINARY_SAMPLE, spec)


def test_check_multilabel_every_label_of_the_set():
    spec = _spec("multilabel", "f1_macro", ("a", "b", "c"))
    sample = pd.DataFrame({"id": ["x", "y"], "label": ["a", "a"]})
    check_submission(pd.DataFrame({"id": ["x", "y"], "label": ["a c", "b"]}), sample, spec)
    with pytest.raises(PodiumInputError,
                       match=r"line 3 \(id 'y'\), column 'label': 'b z' holds labels that are "
                             r"no class: \['z'\]"):
        check_submission(pd.DataFrame({"id": ["x", "y"], "label": ["a c", "b z"]}), sample,
                         spec)


def test_check_ordinal_grades_and_regression_values():
    sample = pd.DataFrame({"id": ["x", "y", "z"], "label": ["0"] * 3})
    ordinal = _spec("ordinal", "qwk", ("0", "1", "2", "3", "4"))
    check_submission(pd.DataFrame({"id": ["x", "y", "z"], "label": ["0", "4", "2"]}), sample,
                     ordinal)
    for bad in ("5", "1.5", "-1"):
        with pytest.raises(PodiumInputError, match="is not a whole grade from 0 to 4"):
            check_submission(pd.DataFrame({"id": ["x", "y", "z"], "label": ["0", bad, "2"]}),
                             sample, ordinal)
    regression = _spec("regression", "rmse", ())
    check_submission(pd.DataFrame({"id": ["x", "y", "z"], "label": ["-1.5", "2e3", "0"]}),
                     sample, regression)
    with pytest.raises(PodiumInputError, match=r"line 4 \(id 'z'\).*'inf' is not a finite"):
        check_submission(pd.DataFrame({"id": ["x", "y", "z"], "label": ["1", "2", "inf"]}),
                         sample, regression)


def test_check_table_lets_named_columns_be_empty():
    """The task-free part, as a mask submission uses it: an empty RLE is an empty mask."""
    sample = pd.DataFrame({"id": ["x", "y"], "rle": ["", ""]})
    check_table(pd.DataFrame({"id": ["x", "y"], "rle": ["1 3", ""]}), sample, "id",
                allow_empty=["rle"])
    with pytest.raises(PodiumInputError, match="column 'rle'"):
        check_table(pd.DataFrame({"id": ["x", "y"], "rle": ["1 3", ""]}), sample, "id")


def test_the_submission_jobs_check_before_writing():
    """Each task's submission job formats, checks, then writes: a refused submission leaves
    no file."""
    import inspect

    from podium.tasks.classify.submit import submit_job
    from podium.tasks.segment.submission import submit_job as mask_submit_job

    script = inspect.getsource(submit_job)
    assert script.index("check_submission(") < script.index("write_csv(")
    script = inspect.getsource(mask_submit_job)
    assert script.index("check_mask_submission(") < script.index("write_csv(")


# ------------------------------------------------------------------ held-out score


def test_held_out_score_of_probabilities_is_the_metric_on_them(tmp_path):
    rng = np.random.default_rng(0)
    n = 200
    truth = rng.integers(0, 2, n)
    positive = np.clip(truth * 0.3 + rng.random(n) * 0.7, 0, 1)
    ids = [f"i{k}" for k in range(n)]
    classes = np.array(["neg", "pos"])
    pd.DataFrame({"id": ids, "label": classes[truth]}).to_csv(tmp_path / "solution.csv",
                                                              index=False)
    spec = _spec(metric="auc")
    sample = pd.DataFrame({"id": ids[::-1], "label": "0.5"})
    submission = format_submission(sample, _binary_predictions(list(positive), ids), spec)
    check_submission(submission, sample, spec)
    submission.to_csv(tmp_path / "submission.csv", index=False)
    score = score_submission(tmp_path / "submission.csv", tmp_path / "solution.csv", spec)
    assert score["metric"] == "auc" and score["n"] == n
    assert score["score"] == pytest.approx(roc_auc_score(truth, positive), abs=1e-12)
    # logloss on the same column
    logloss = score_submission(tmp_path / "submission.csv", tmp_path / "solution.csv",
                               _spec(metric="logloss"))
    assert logloss["score"] == pytest.approx(log_loss(truth, positive), abs=1e-9)
    # the same predictions as labels: AUC of the labels, as the leaderboard would score them
    labels = format_submission(sample, _binary_predictions(list(positive), ids), spec,
                               values="label")
    labels.to_csv(tmp_path / "labels.csv", index=False)
    as_labels = score_submission(tmp_path / "labels.csv", tmp_path / "solution.csv", spec,
                                 values="label")
    assert as_labels["metric"] == "auc"
    assert as_labels["score"] == pytest.approx(
        roc_auc_score(truth, (positive >= 0.5).astype(float)))
    accuracy = score_submission(tmp_path / "labels.csv", tmp_path / "solution.csv",
                                _spec(metric="accuracy"), values="label")
    assert accuracy["score"] == pytest.approx(accuracy_score(truth, positive >= 0.5))


def test_held_out_score_of_class_columns_uses_the_metric(tmp_path):
    spec = _spec("multiclass", "logloss", ("a", "b", "c"))
    pd.DataFrame({"id": ["x", "y"], "label": ["a", "c"]}).to_csv(tmp_path / "solution.csv",
                                                                 index=False)
    sample = pd.DataFrame({"id": ["x", "y"], "a": "0", "b": "0", "c": "0"})
    format_submission(sample, MULTICLASS_PREDICTIONS, spec).to_csv(tmp_path / "sub.csv",
                                                                   index=False)
    score = score_submission(tmp_path / "sub.csv", tmp_path / "solution.csv", spec)
    proba = MULTICLASS_PREDICTIONS[["p_a", "p_b", "p_c"]].to_numpy()
    expected = log_loss([0, 2], proba / proba.sum(axis=1, keepdims=True), labels=[0, 1, 2])
    assert score["metric"] == "logloss" and score["score"] == pytest.approx(expected)


@pytest.mark.parametrize(("metric", "written"), [("rmse", ["2.4", "0.6"]), ("qwk", ["2", "1"])])
def test_ordinal_submission_holds_values_under_a_value_metric(tmp_path, metric, written):
    """rmse scores the value, so rounding it to a grade would score worse than CV says;
    qwk scores grades. The held-out score is the metric on what was written."""
    spec = _spec("ordinal", metric, ("0", "1", "2", "3"))
    sample = pd.DataFrame({"id": ["a", "b"], "label": ["0", "0"]})
    predictions = pd.DataFrame({"id": ["a", "b"], "pred": [2.4, 0.6]})
    submission = format_submission(sample, predictions, spec)
    assert list(submission["label"]) == written
    check_submission(submission, sample, spec)
    submission.to_csv(tmp_path / "submission.csv", index=False)
    pd.DataFrame({"id": ["a", "b"], "label": ["3", "1"]}).to_csv(tmp_path / "solution.csv",
                                                                index=False)
    score = score_submission(tmp_path / "submission.csv", tmp_path / "solution.csv", spec)
    assert score["metric"] == metric
    if metric == "rmse":
        assert score["score"] == pytest.approx(np.sqrt(((2.4 - 3) ** 2 + 0.4 ** 2) / 2))
    graded = format_submission(sample, predictions, spec, values="label")
    assert list(graded["label"]) == ["2", "1"]
