"""The segment plug-in's part in the train and predict rules: its trainer reads the packed
masks, a fold writes float16 ``N x K x S x S`` probability maps with their ``id, row`` index,
for its validation rows and for the test images."""

from podium.train.stage import ModelStage

STAGE = ModelStage(
    train="podium.tasks.segment.fit:train_segment_job",
    predict="podium.tasks.segment.fit:predict_segment_job",
    train_inputs={"masks": "preprocess/train_masks.npy"},
    fold_outputs={"oof_probs": "oof_probs.npy", "oof_index": "oof_index.parquet"},
    test_outputs={"probs": "test_probs.npy", "index": "test_index.parquet"},
)
