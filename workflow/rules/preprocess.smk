rule preprocess_images:
    input:
        manifest=res("data/{split}_manifest.parquet"),
    output:
        array=res("preprocess/{split}.npy"),
        index=res("preprocess/{split}_index.parquet"),
    log:
        res("logs/preprocess_images/{split}.log"),
    benchmark:
        res("benchmarks/preprocess_images/{split}.tsv")
    conda:
        "../../envs/data.yaml"
    threads: config["preprocess"]["threads"]
    params:
        settings=preprocess_settings(),
        code=code("preprocess.py"),
    script:
        "../scripts/preprocess.py"
