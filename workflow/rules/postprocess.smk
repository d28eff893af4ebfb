# Post-processors fitted on one entry's OOF predictions fold by fold (honest CV), refitted on
# all OOF for its test predictions; each result is a leaderboard entry of its own.


rule postprocess_predictions:
    input:
        **truth_inputs(),
        oof=lambda wildcards: entry_prediction(wildcards.entry, "oof"),
        test=lambda wildcards: entry_prediction(wildcards.entry, "test"),
    output:
        **entry_files("postprocess/{entry}+{post}"),
    log:
        res("logs/postprocess_predictions/{entry}+{post}.log"),
    benchmark:
        res("benchmarks/postprocess_predictions/{entry}+{post}.tsv")
    conda:
        "../../envs/ensemble.yaml"
    params:
        settings=lambda wildcards: config["postprocess"][wildcards.post],
        entry=STAGE.postprocess,
        code=code("stage.py", STAGE.postprocess),
    script:
        "../scripts/stage.py"
