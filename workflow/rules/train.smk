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
