rule blend_models:
    input:
        oofs=level1_inputs("oof"),
        tests=level1_inputs("test"),
        folds=res("folds.csv"),
        manifest=res("data/train_manifest.parquet"),
        task=res("data/task.json"),
    output:
        oof=res("ensemble/{blend}/oof.parquet"),
        test=res("ensemble/{blend}/test.parquet"),
        cv=res("ensemble/{blend}/cv.json"),
    log:
        res("logs/blend_models/{blend}.log"),
    benchmark:
        res("benchmarks/blend_models/{blend}.tsv")
    conda:
        "../../envs/ensemble.yaml"
    params:
        settings=lambda wildcards: config["ensemble"]["blends"][wildcards.blend],
        models=MODELS,
        code=code("blend.py"),
    script:
        "../scripts/blend.py"


rule stack_models:
    input:
        oofs=level1_inputs("oof"),
        tests=level1_inputs("test"),
        folds=res("folds.csv"),
        manifest=res("data/manifest.parquet"),
        task=res("data/task.json"),
    output:
        oof=res("ensemble/{stacker}/oof.parquet"),
        test=res("ensemble/{stacker}/test.parquet"),
        cv=res("ensemble/{stacker}/cv.json"),
    log:
        res("logs/stack_models/{stacker}.log"),
    benchmark:
        res("benchmarks/stack_models/{stacker}.tsv")
    conda:
        "../../envs/ensemble.yaml"
    threads: config["ensemble"]["threads"]
    params:
        settings=lambda wildcards: config["ensemble"]["stackers"][wildcards.stacker],
        models=MODELS,
        seed=config["ensemble"]["seed"],
        code=code("stack.py"),
    script:
        "../scripts/stack.py"
