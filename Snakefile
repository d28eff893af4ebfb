"""podium: an image competition folder in, a stacked submission out. See README.md."""

import gc
import os
import sys
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")

# The workflow runs the podium next to it, whatever else is installed: this Snakefile and the
# jobs import src/podium, and the code-hash params (common.smk) hash the same files.
SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, SRC)
os.environ.update(
    PYTHONPATH=os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)
)

from podium.configcheck import snakemake_check
from podium.configfiles import layer_snakemake_config
from podium.settings import canonicalise


configfile: "config.yaml"


# A user's --configfile replaces the collections it lists (models, ensemble.blends,
# ensemble.stackers, postprocess) instead of merging into config.yaml's, which are an
# example, not a base; every other key merges as Snakemake merges it (podium.configfiles).
layer_snakemake_config(workflow, config)

# Params compare by content: Snakemake reruns a job when a param's repr changes, so every rule
# gets the config in one spelling (podium.settings): mappings with sorted keys, numbers in one
# form per schema type, 1e-3 read as YAML 1.2 reads it. Once before the check, so that 1e-3
# validates as a number, and once after it, for the defaults the schema fills in. The check
# covers the schema and every registry name (backbones, losses, TTA views, augmentations,
# ...): a bad config fails this parse, not a training job.
SCHEMA = Path(workflow.basedir) / "workflow/schemas/config.schema.yaml"
canonicalise(config, SCHEMA)
snakemake_check(workflow, config)
canonicalise(config, SCHEMA)


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/adversarial.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/ensemble.smk"
include: "workflow/rules/postprocess.smk"
include: "workflow/rules/submit.smk"


# On a cluster the local rules run on the submitting node: a cluster job costs seconds of
# queueing and start-up, more than these take. Training, test prediction and preprocessing go
# to the cluster. Rules that exist only in some configs are local where they are defined.
localrules:
    all,
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
    plot_results,


rule all:
    default_target: True
    input:
        final_outputs(),


# What this parse made (Snakemake's workflow, the config and schema, podium's code hashes)
# lives as long as the process: frozen, the garbage collector skips it on every later pass
# and at exit (0.4 s of a 2 s dry run).
gc.freeze()
