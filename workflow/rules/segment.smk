# Segmentation competitions' stages besides the shared ones: packed masks (which the shared
# train_model rule reads through the segment plug-in's stage), gathering the folds' probability
# maps, mean blends and mask post-processing, then an RLE submission. Included instead of the
# classification stages when competition.task is segmentation; models.smk trains and predicts
# for both. In an instance competition (competition.instances) the packed instance labels
# score every entry.


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
        conda:
            "../../envs/data.yaml"
        params:
            size=config["preprocess"]["size"],
            code=code("pack_instances.py"),
        script:
            "../scripts/pack_instances.py"


rule blend_segmenters:
    input:
        **INSTANCE_LABELS,
        oofs=[res(f"models/{m}/oof_probs.npy") for m in MODELS],
        tests=[res(f"models/{m}/test_probs.npy") for m in MODELS],
        test_index=res("preprocess/test_index.parquet"),
        train_index=res("preprocess/train_index.parquet"),
        masks=res("preprocess/train_masks.npy"),
        folds=res("folds.csv"),
    output:
        **entry_outputs("ensemble/{blend}"),
    log:
        res("logs/blend_segmenters/{blend}.log"),
    benchmark:
        res("benchmarks/blend_segmenters/{blend}.tsv")
    conda:
        "../../envs/ensemble.yaml"
    params:
        settings=lambda wildcards: config["ensemble"]["blends"][wildcards.blend],
        code=code("blend_segmenters.py"),
    script:
        "../scripts/blend_segmenters.py"


rule postprocess_masks:
    input:
        **INSTANCE_LABELS,
        oof=lambda wildcards: res(
            f"{entry_folder(wildcards.entry)}/{wildcards.entry}/oof_probs.npy"
        ),
        test=lambda wildcards: res(
            f"{entry_folder(wildcards.entry)}/{wildcards.entry}/test_probs.npy"
        ),
        test_index=res("preprocess/test_index.parquet"),
        train_index=res("preprocess/train_index.parquet"),
        masks=res("preprocess/train_masks.npy"),
        folds=res("folds.csv"),
    output:
        **entry_outputs("postprocess/{entry}+{post}"),
    log:
        res("logs/postprocess_masks/{entry}+{post}.log"),
    benchmark:
        res("benchmarks/postprocess_masks/{entry}+{post}.tsv")
    conda:
        "../../envs/ensemble.yaml"
    params:
        settings=lambda wildcards: config["postprocess"][wildcards.post],
        code=code("postprocess_masks.py"),
    script:
        "../scripts/postprocess_masks.py"


rule build_leaderboard:
    input:
        cvs=[res(f"{kind}/{name}/cv.json") for name, kind in all_entries()],
    output:
        leaderboard=res("leaderboard.csv"),
    log:
        res("logs/build_leaderboard/all.log"),
    benchmark:
        res("benchmarks/build_leaderboard/all.tsv")
    conda:
        "../../envs/ensemble.yaml"
    params:
        code=code("leaderboard.py"),
    script:
        "../scripts/leaderboard.py"


rule plot_segmentation:
    input:
        **INSTANCE_LABELS,
        leaderboard=res("leaderboard.csv"),
        histories=expand(
            res("models/{model}/fold{fold}/history.csv"), model=MODELS, fold=FOLDS
        ),
        cvs=[res(f"{kind}/{name}/cv.json") for name, kind in all_entries()],
        oofs=[res(f"{kind}/{name}/oof_probs.npy") for name, kind in all_entries()],
        train_array=res("preprocess/train.npy"),
        train_index=res("preprocess/train_index.parquet"),
        masks=res("preprocess/train_masks.npy"),
        folds=res("folds.csv"),
        task=res("data/task.json"),
    output:
        leaderboard=report(
            res("plots/leaderboard.png"),
            caption="../report/leaderboard.rst",
            category="Leaderboard",
        ),
        folds=report(
            res("plots/cv_folds.png"),
            caption="../report/cv_folds.rst",
            category="Leaderboard",
        ),
        curves=report(
            res("plots/learning_curves.png"),
            caption="../report/learning_curves.rst",
            category="Training",
        ),
        masks=report(
            res("plots/masks.png"),
            caption="../report/masks.rst",
            category="Leaderboard",
        ),
    log:
        res("logs/plot_segmentation/all.log"),
    benchmark:
        res("benchmarks/plot_segmentation/all.tsv")
    conda:
        "../../envs/ensemble.yaml"
    params:
        names=[name for name, _ in all_entries()],
        code=code("plot_segmentation.py"),
    script:
        "../scripts/plot_segmentation.py"


rule write_mask_submission:
    input:
        sample=str(Path(competition_dir()) / COMPETITION["sample_submission"]),
        leaderboard=res("leaderboard.csv"),
        tests=[res(f"{kind}/{name}/test_probs.npy") for name, kind in all_entries()],
        test_index=res("preprocess/test_index.parquet"),
        manifest=res("data/test_manifest.parquet"),
        task=res("data/task.json"),
    output:
        submission=res("submission.csv"),
    log:
        res("logs/write_mask_submission/all.log"),
    benchmark:
        res("benchmarks/write_mask_submission/all.tsv")
    conda:
        "../../envs/ensemble.yaml"
    params:
        names=[name for name, _ in all_entries()],
        mask_size=config["submission"]["mask_size"],
        encoding=COMPETITION["encoding"],
        code=code("mask_submission.py"),
    script:
        "../scripts/mask_submission.py"


if EMBEDDED:

    rule score_mask_submission:
        input:
            solution=res("competition/solution.csv"),
            submission=res("submission.csv"),
            manifest=res("data/test_manifest.parquet"),
            task=res("data/task.json"),
        output:
            score=res("score.json"),
        log:
            res("logs/score_mask_submission/all.log"),
        benchmark:
            res("benchmarks/score_mask_submission/all.tsv")
        conda:
            "../../envs/ensemble.yaml"
        params:
            mask_size=config["submission"]["mask_size"],
            code=code("score_masks.py"),
        script:
            "../scripts/score_masks.py"
