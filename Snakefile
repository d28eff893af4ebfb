"""podium: an image competition folder in, a stacked submission out. See README.md."""

import sys
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")
# the podium beside this Snakefile, whatever else is installed (common.smk says why)
sys.path.insert(0, str(Path(workflow.basedir) / "src"))
from podium.configcheck import snakemake_check


configfile: "config.yaml"


# The schema (filling its defaults) and every registry name (backbones, losses, TTA views,
# augmentations, ...): a bad config fails this parse, not a training job.
snakemake_check(workflow, config)


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/preprocess.smk"


# On a cluster the local rules run on the submitting node: a cluster job costs seconds of
# queueing and start-up, more than these take. Training, test prediction and preprocessing go
# to the cluster.
if SEGMENTATION:

    include: "workflow/rules/segment.smk"

    localrules:
        all,
        make_shapes_competition,
        ingest_train,
        ingest_test,
        merge_manifest,
        find_train_duplicates,
        find_duplicates,
        make_folds,
        pack_masks,
        gather_segmenter,
        blend_segmenters,
        postprocess_masks,
        build_leaderboard,
        write_mask_submission,
        score_mask_submission,
        plot_segmentation,

else:

    include: "workflow/rules/adversarial.smk"
    include: "workflow/rules/train.smk"
    include: "workflow/rules/ensemble.smk"
    include: "workflow/rules/postprocess.smk"
    include: "workflow/rules/submit.smk"

    localrules:
        all,
        make_digits_competition,
        ingest_train,
        ingest_test,
        merge_manifest,
        find_train_duplicates,
        find_duplicates,
        adversarial_validation,
        make_folds,
        gather_model,
        select_pseudo_labels,
        blend_models,
        stack_models,
        postprocess_predictions,
        build_leaderboard,
        write_submission,
        score_submission,
        plot_results,


rule all:
    default_target: True
    input:
        final_outputs(),
