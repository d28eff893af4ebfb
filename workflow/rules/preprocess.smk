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


# The task's targets packed row for row with the packed train images (a segmentation
# competition's masks, an instance competition's labels): one rule per file the task stage
# packs, named after it (pack_masks for train_masks.npy), run only where a later rule reads it.
for packed, pack_entry in STAGE.packed.items():
    pack_rule = f"pack_{Path(packed).stem.removeprefix('train_')}"

    rule:
        name:
            pack_rule
        input:
            manifest=res("data/train_manifest.parquet"),
            index=res("preprocess/train_index.parquet"),
            task=res("data/task.json"),
        output:
            packed=res(f"preprocess/{packed}"),
        log:
            res(f"logs/{pack_rule}/all.log"),
        benchmark:
            res(f"benchmarks/{pack_rule}/all.tsv")
        localrule: True
        conda:
            "../../envs/data.yaml"
        params:
            size=config["preprocess"]["size"],
            entry=pack_entry,
            code=code("stage.py", pack_entry),
        script:
            "../scripts/stage.py"
