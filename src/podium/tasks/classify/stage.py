"""The classify plug-in's part in the train and predict rules: its trainer reads the labels
from the manifest, a fold writes ``oof.parquet`` (id and one column per prediction target)
and each fold's test predictions ``test.parquet``; a model's entry is its OOF for every
train row, its test predictions averaged over folds, and cv.json."""

from podium.train.stage import ModelStage

STAGE = ModelStage(
    train="podium.train.fit:train_fold_job",
    predict="podium.train.fit:predict_test_job",
    gather="podium.ensemble.gather:gather_job",
    train_inputs={"manifest": "data/train_manifest.parquet"},
    fold_outputs={"oof": "oof.parquet"},
    test_outputs={"test": "test.parquet"},
    gather_inputs={"folds": "folds.csv", "manifest": "data/train_manifest.parquet",
                   "task": "data/task.json"},
    entry_outputs={"oof": "oof.parquet", "test": "test.parquet", "cv": "cv.json"},
    row_weights=True,
)
