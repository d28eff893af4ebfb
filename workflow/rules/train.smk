rule gather_model:
    input:
        fold_oofs=expand(res("models/{{model}}/fold{fold}/oof.parquet"), fold=FOLDS),
        fold_tests=expand(res("models/{{model}}/fold{fold}/test.parquet"), fold=FOLDS),
        folds=res("folds.csv"),
        manifest=res("data/train_manifest.parquet"),
        task=res("data/task.json"),
    output:
        oof=res("models/{model}/oof.parquet"),
        test=res("models/{model}/test.parquet"),
        cv=res("models/{model}/cv.json"),
    log:
        res("logs/gather_model/{model}.log"),
    benchmark:
        res("benchmarks/gather_model/{model}.tsv")
    conda:
        "../../envs/ensemble.yaml"
    params:
        code=code("gather.py"),
    script:
        "../scripts/gather.py"


rule select_pseudo_labels:
    input:
        tests=expand(res("models/{model}/fold{{fold}}/test.parquet"), model=ROUND1),
        task=res("data/task.json"),
    output:
        pseudo=res("pseudo/fold{fold}.csv"),
    log:
        res("logs/select_pseudo_labels/fold{fold}.log"),
    benchmark:
        res("benchmarks/select_pseudo_labels/fold{fold}.tsv")
    conda:
        "../../envs/ensemble.yaml"
    params:
        settings=PSEUDO,
        code=code("pseudo.py"),
    script:
        "../scripts/pseudo.py"
