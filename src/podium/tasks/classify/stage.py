"""The classify plug-in's part in the DAG's stages: its trainer reads the labels from the
manifest, a fold writes ``oof.parquet`` (id and one column per prediction target) and each
fold's test predictions ``test.parquet``; a model's entry is its OOF for every train row, its
test predictions averaged over folds, and cv.json. Every blend and post-processor of the
registries applies, stackers fit on the models' predictions (and, when asked, the images'
sizes from the merged manifest), the submission copies leaked train labels when asked."""

from podium.stage import TaskStage

STAGE = TaskStage(
    targets="podium.tasks.classify.targets",
    embedded={"digits": "podium.data.digits:make_job",
              "digits_multilabel": "podium.data.digits:make_job"},
    train="podium.tasks.classify.fit:train_fold_job",
    predict="podium.tasks.classify.fit:predict_test_job",
    gather="podium.tasks.classify.entries:gather_job",
    train_inputs={"manifest": "data/train_manifest.parquet"},
    fold_outputs={"oof": "oof.parquet"},
    test_outputs={"test": "test.parquet"},
    truth_inputs={"folds": "folds.csv", "manifest": "data/train_manifest.parquet",
                  "task": "data/task.json"},
    blend="podium.tasks.classify.level2:blend_job",
    stack="podium.tasks.classify.level2:stack_job",
    postprocess="podium.tasks.classify.level2:postprocess_job",
    submit="podium.tasks.classify.submit:submit_job",
    score="podium.tasks.classify.submit:score_job",
    plot="podium.tasks.classify.plots:plot_job",
    submit_inputs={"leaks": "dedup/leaks.csv"},
    submit_params={"leak_labels": "dedup.leak_labels", "values": "submission.values"},
    score_params={"values": "submission.values"},
    plots={"best": "best_entry.png"},
    row_weights=True,
    pseudo_labels=True,
    model_checks=(("podium.tasks.classify.models:check_backbone", ("backbone",)),
                  ("podium.tasks.classify.models:check_pooling", ("pooling",)),
                  ("podium.tasks.classify.losses:check_loss", ("loss", "task")),
                  ("podium.train.samplers:check_sampler_config", ("sampler",)),
                  ("podium.train.tta:build_tta", ("tta", "tta_scales"))),
)
