rule adversarial_validation:
    input:
        train_array=res("preprocess/train.npy"),
        train_index=res("preprocess/train_index.parquet"),
        test_array=res("preprocess/test.npy"),
        test_index=res("preprocess/test_index.parquet"),
        manifest=res("data/manifest.parquet"),
    output:
        summary=res("adversarial/adversarial.json"),
        weights=res("adversarial/weights.csv"),
        plot=report(
            res("plots/adversarial.png"),
            caption="../report/adversarial.rst",
            category="Data",
        ),
    log:
        res("logs/adversarial_validation/all.log"),
    benchmark:
        res("benchmarks/adversarial_validation/all.tsv")
    conda:
        "../../envs/ensemble.yaml"
    threads: config["ensemble"]["threads"]
    params:
        settings=ADVERSARIAL,
        seed=config["ensemble"]["seed"],
        code=code("adversarial.py"),
    script:
        "../scripts/adversarial.py"
