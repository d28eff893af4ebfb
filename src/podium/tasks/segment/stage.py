"""The segment plug-in's part in the train and predict rules: its trainer reads the packed
masks, a fold writes float16 ``N x K x S x S`` probability maps with their ``id, row`` index,
for its validation rows and for the test images; a model's entry holds the maps of every
train image and the test maps averaged over folds (podium.tasks.segment.entries). In an
instance competition the gather job also reads the packed instance labels (the rule adds
them), which score every entry."""

from podium.train.stage import ModelStage

STAGE = ModelStage(
    train="podium.tasks.segment.fit:train_segment_job",
    predict="podium.tasks.segment.fit:predict_segment_job",
    gather="podium.tasks.segment.entries:gather_job",
    train_inputs={"masks": "preprocess/train_masks.npy"},
    fold_outputs={"oof_probs": "oof_probs.npy", "oof_index": "oof_index.parquet"},
    test_outputs={"probs": "test_probs.npy", "index": "test_index.parquet"},
    gather_inputs={"folds": "folds.csv", "train_index": "preprocess/train_index.parquet",
                   "masks": "preprocess/train_masks.npy",
                   "test_index": "preprocess/test_index.parquet"},
    entry_outputs={"oof_probs": "oof_probs.npy", "test_probs": "test_probs.npy",
                   "oof": "oof.parquet", "test": "test.parquet", "cv": "cv.json"},
)
