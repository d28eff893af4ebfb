"""podium: an image competition folder in, a stacked submission out. See README.md."""

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/adversarial.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/ensemble.smk"
include: "workflow/rules/postprocess.smk"
include: "workflow/rules/submit.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
