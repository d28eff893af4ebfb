# What a segmentation competition adds before the shared stages: its embedded demo, and its
# masks (and, in an instance competition, instance labels) packed row for row with the images,
# which the segment plug-in's stage hands to its trainer and to whatever scores an entry.


if EMBEDDED:

    rule make_shapes_competition:
        output:
            train_csv=res("competition/train.csv"),
            sample_submission=res("competition/sample_submission.csv"),
            solution=res("competition/solution.csv"),
            train_images=directory(res("competition/train")),
            test_images=directory(res("competition/test")),
        log:
            res("logs/make_shapes_competition/all.log"),
        benchmark:
            res("benchmarks/make_shapes_competition/all.tsv")
        localrule: True
        conda:
            "../../envs/data.yaml"
        params:
            shapes=canonical(
                {
                    "n_images": COMPETITION["embedded_max_images"] or 240,
                    "classes": COMPETITION["classes"],
                    "instances": INSTANCES,
                    "rle_format": COMPETITION["rle_format"],
                }
            ),
            code=code("make_shapes.py"),
        script:
            "../scripts/make_shapes.py"


rule pack_masks:
    input:
        manifest=res("data/train_manifest.parquet"),
        index=res("preprocess/train_index.parquet"),
        task=res("data/task.json"),
    output:
        masks=res("preprocess/train_masks.npy"),
    log:
        res("logs/pack_masks/all.log"),
    benchmark:
        res("benchmarks/pack_masks/all.tsv")
    localrule: True
    conda:
        "../../envs/data.yaml"
    params:
        size=config["preprocess"]["size"],
        code=code("pack_masks.py"),
    script:
        "../scripts/pack_masks.py"


if INSTANCES:

    rule pack_instances:
        input:
            manifest=res("data/train_manifest.parquet"),
            index=res("preprocess/train_index.parquet"),
            task=res("data/task.json"),
        output:
            instances=res("preprocess/train_instances.npy"),
        log:
            res("logs/pack_instances/all.log"),
        benchmark:
            res("benchmarks/pack_instances/all.tsv")
        localrule: True
        conda:
            "../../envs/data.yaml"
        params:
            size=config["preprocess"]["size"],
            code=code("pack_instances.py"),
        script:
            "../scripts/pack_instances.py"
