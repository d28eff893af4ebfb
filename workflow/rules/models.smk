# Every task's models: train {model} x {fold}, predict the test images with each fold's
# model.pt, and gather a model's folds into its leaderboard entry. The rules are the same for every task; the task plug-in's stage
# (podium.stage, STAGE in common.smk) adds the inputs its trainer reads, names the
# prediction files a fold writes and the entry points the scripts run. Each fold's state is
# kept in resume/ outside the outputs, so a killed job continues from its last epoch.


rule train_model:
    input:
        unpack(pseudo_inputs),
        **training_weights(),
        **{key: res(path) for key, path in STAGE.train_inputs.items()},
        train_array=res("preprocess/train.npy"),
        train_index=res("preprocess/train_index.parquet"),
        folds=res("folds.csv"),
        task=res("data/task.json"),
    output:
        **fold_files(FOLD_FILES),
        **fold_files(STAGE.fold_outputs),
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
        entry=STAGE.train,
        code=code("gpu_stage.py", STAGE.train),
    script:
        "../scripts/gpu_stage.py"


rule predict_test:
    input:
        weights=res("models/{model}/fold{fold}/model.pt"),
        test_array=res("preprocess/test.npy"),
        test_index=res("preprocess/test_index.parquet"),
        task=res("data/task.json"),
    output:
        **fold_files(STAGE.test_outputs),
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
        entry=STAGE.predict,
        code=code("gpu_stage.py", STAGE.predict),
    script:
        "../scripts/gpu_stage.py"


rule gather_model:
    input:
        **truth_inputs(),
        **{
            f"fold_{key}": expand(
                res(f"models/{{{{model}}}}/fold{{fold}}/{name}"), fold=FOLDS
            )
            for key, name in {**STAGE.fold_outputs, **STAGE.test_outputs}.items()
        },
    output:
        **entry_files("models/{model}"),
    log:
        res("logs/gather_model/{model}.log"),
    benchmark:
        res("benchmarks/gather_model/{model}.tsv")
    conda:
        "../../envs/ensemble.yaml"
    params:
        entry=STAGE.gather,
        code=code("stage.py", STAGE.gather),
    script:
        "../scripts/stage.py"
