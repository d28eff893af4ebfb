rule train_model:
    input:
        unpack(pseudo_inputs),
        **training_weights(),
        train_array=res("preprocess/train.npy"),
        train_index=res("preprocess/train_index.parquet"),
        folds=res("folds.csv"),
        manifest=res("data/train_manifest.parquet"),
        task=res("data/task.json"),
    output:
        weights=res("models/{model}/fold{fold}/model.pt"),
        oof=res("models/{model}/fold{fold}/oof.parquet"),
        history=res("models/{model}/fold{fold}/history.csv"),
        metrics=res("models/{model}/fold{fold}/metrics.json"),
    log:
        res("logs/train_model/{model}_fold{fold}.log"),
    benchmark:
        res("benchmarks/train_model/{model}_fold{fold}.tsv")
    conda:
        "../../envs/train.yaml"
    threads: config["train"]["threads"]
    resources:
        gpu=1,
    params:
        settings=lambda wildcards: model_settings(wildcards.model),
        resume_dir=lambda wildcards: res(
            f"resume/{wildcards.model}/fold{wildcards.fold}"
        ),
        code=code("train.py"),
    script:
        "../scripts/train.py"


rule predict_test:
    input:
        weights=res("models/{model}/fold{fold}/model.pt"),
        test_array=res("preprocess/test.npy"),
        test_index=res("preprocess/test_index.parquet"),
        task=res("data/task.json"),
    output:
        test=res("models/{model}/fold{fold}/test.parquet"),
    log:
        res("logs/predict_test/{model}_fold{fold}.log"),
    benchmark:
        res("benchmarks/predict_test/{model}_fold{fold}.tsv")
    conda:
        "../../envs/train.yaml"
    threads: config["train"]["threads"]
    resources:
        gpu=1,
    params:
        settings=lambda wildcards: model_settings(wildcards.model),
        code=code("predict.py"),
    script:
        "../scripts/predict.py"


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
