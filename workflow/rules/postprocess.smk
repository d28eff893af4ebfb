rule postprocess_predictions:
    input:
        oof=lambda wildcards: res(
            f"{entry_folder(wildcards.entry)}/{wildcards.entry}/oof.parquet"
        ),
        test=lambda wildcards: res(
            f"{entry_folder(wildcards.entry)}/{wildcards.entry}/test.parquet"
        ),
        folds=res("folds.csv"),
        manifest=res("data/train_manifest.parquet"),
        task=res("data/task.json"),
    output:
        oof=res("postprocess/{entry}+{post}/oof.parquet"),
        test=res("postprocess/{entry}+{post}/test.parquet"),
        cv=res("postprocess/{entry}+{post}/cv.json"),
    log:
        res("logs/postprocess_predictions/{entry}+{post}.log"),
    benchmark:
        res("benchmarks/postprocess_predictions/{entry}+{post}.tsv")
    conda:
        "../../envs/ensemble.yaml"
    params:
        settings=lambda wildcards: config["postprocess"][wildcards.post],
        code=code("postprocess.py"),
    script:
        "../scripts/postprocess.py"
