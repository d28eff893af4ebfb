"""The segment plug-in's part in the DAG's stages: its trainer reads the packed masks, a fold
writes float16 ``N x K x S x S`` probability maps with their ``id, row`` index, for its
validation rows and for the test images; an entry holds the maps of every train image and
the test maps (podium.tasks.segment.entries), which blends average and post-processors turn
into masks or instance labels. In an instance competition the rules add the packed instance
labels to what scores an entry. The submission run-length encodes the best entry's masks at
each test image's size; the report draws its worst and best OOF masks. Its demo is the
embedded shapes; it packs masks (and instance labels) row for row with the images, which
are stretched and kept in their stored pixel order."""

from podium.stage import TaskStage

STAGE = TaskStage(
    targets="podium.tasks.segment.targets",
    metrics="podium.tasks.segment.metrics",
    embedded={"shapes": "podium.tasks.segment.shapes:make_job"},
    embedded_params={"classes": "competition.classes", "instances": "competition.instances",
                     "rle_format": "competition.rle_format"},
    packed={"train_masks.npy": "podium.tasks.segment.masks:pack_job",
            "train_instances.npy": "podium.tasks.segment.instances:pack_job"},
    # masks are in the stored pixel order, so images are not turned by EXIF, and only
    # stretching maps a mask back onto its image exactly (pad and center_crop would move or
    # cut the masks)
    resize_modes=("stretch",),
    preprocess_fixed={"exif_orientation": False},
    train="podium.tasks.segment.fit:train_segment_job",
    predict="podium.tasks.segment.fit:predict_segment_job",
    gather="podium.tasks.segment.entries:gather_job",
    train_inputs={"masks": "preprocess/train_masks.npy"},
    fold_outputs={"oof_probs": "oof_probs.npy", "oof_index": "oof_index.parquet"},
    test_outputs={"probs": "test_probs.npy", "index": "test_index.parquet"},
    truth_inputs={"folds": "folds.csv", "train_index": "preprocess/train_index.parquet",
                  "masks": "preprocess/train_masks.npy",
                  "test_index": "preprocess/test_index.parquet"},
    truth_when={"competition.instances": {"instances": "preprocess/train_instances.npy"}},
    entry_outputs={"oof_probs": "oof_probs.npy", "test_probs": "test_probs.npy",
                   "oof": "oof.parquet", "test": "test.parquet", "cv": "cv.json"},
    predictions={"oof": "oof_probs.npy", "test": "test_probs.npy"},
    blend="podium.tasks.segment.entries:blend_job",
    postprocess="podium.tasks.segment.entries:postprocess_job",
    blend_methods=("mean",),
    post_methods=("masks", "instances"),
    post_needs={"instances": ("competition.instances",
                              "instances splits objects of an instance competition; set "
                              "competition.instances: true or use method masks.")},
    submit="podium.tasks.segment.submission:submit_job",
    score="podium.tasks.segment.submission:score_job",
    plot="podium.tasks.segment.plots:plot_job",
    submit_inputs={"test_index": "preprocess/test_index.parquet",
                   "manifest": "data/test_manifest.parquet"},
    submit_params={"mask_size": "submission.mask_size"},
    score_inputs={"manifest": "data/test_manifest.parquet"},
    score_params={"mask_size": "submission.mask_size"},
    plot_inputs={"train_array": "preprocess/train.npy"},
    plots={"masks": "masks.png"},
    model_checks=(("podium.tasks.segment.models:check_encoder", ("backbone",)),
                  ("podium.tasks.segment.losses:check_segmentation_loss", ("loss",)),
                  ("podium.train.tta:check_pixel_tta", ("tta", "tta_scales"))),
)
