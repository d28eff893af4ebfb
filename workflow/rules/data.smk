if EMBEDDED:

    # The embedded demo the config names (competition.embedded), written as a competition
    # folder with a held-out solution by the task plug-in that offers it.
    rule make_embedded_competition:
        output:
            train_csv=res("competition/train.csv"),
            sample_submission=res("competition/sample_submission.csv"),
            solution=res("competition/solution.csv"),
            train_images=directory(res("competition/train")),
            test_images=directory(res("competition/test")),
        log:
            res("logs/make_embedded_competition/all.log"),
        benchmark:
            res("benchmarks/make_embedded_competition/all.tsv")
        localrule: True
        conda:
            "../../envs/data.yaml"
        params:
            settings=canonical(
                {
                    "name": COMPETITION["embedded"],
                    "max_images": COMPETITION["embedded_max_images"],
                    **config_params(STAGE.embedded_params),
                }
            ),
            entry=EMBEDDED_ENTRY,
            code=code("stage.py", EMBEDDED_ENTRY),
        script:
            "../scripts/stage.py"


rule ingest_train:
    input:
        competition_inputs("train"),
    output:
        manifest=res("data/train_manifest.parquet"),
        task=res("data/task.json"),
        skipped=res("data/skipped.csv"),
    log:
        res("logs/ingest_train/all.log"),
    benchmark:
        res("benchmarks/ingest_train/all.tsv")
    conda:
        "../../envs/data.yaml"
    threads: config["preprocess"]["threads"]
    params:
        competition=competition_params("train"),
        entry=STAGE.targets,
        code=code("ingest_train.py", STAGE.targets),
    script:
        "../scripts/ingest_train.py"


rule ingest_test:
    input:
        competition_inputs("test"),
    output:
        manifest=res("data/test_manifest.parquet"),
    log:
        res("logs/ingest_test/all.log"),
    benchmark:
        res("benchmarks/ingest_test/all.tsv")
    conda:
        "../../envs/data.yaml"
    threads: config["preprocess"]["threads"]
    params:
        competition=competition_params("test"),
        entry=STAGE.targets,
        code=code("ingest_test.py", STAGE.targets),
    script:
        "../scripts/ingest_test.py"


rule merge_manifest:
    input:
        train=res("data/train_manifest.parquet"),
        test=res("data/test_manifest.parquet"),
    output:
        manifest=res("data/manifest.parquet"),
    log:
        res("logs/merge_manifest/all.log"),
    benchmark:
        res("benchmarks/merge_manifest/all.tsv")
    conda:
        "../../envs/data.yaml"
    params:
        code=code("merge_manifest.py"),
    script:
        "../scripts/merge_manifest.py"


rule find_train_duplicates:
    input:
        manifest=res("data/train_manifest.parquet"),
    output:
        clusters=res("dedup/train_clusters.csv"),
        pairs=res("dedup/train_pairs.csv"),
        conflicts=res("dedup/conflicts.csv"),
        excluded=res("dedup/excluded.csv"),
    log:
        res("logs/find_train_duplicates/all.log"),
    benchmark:
        res("benchmarks/find_train_duplicates/all.tsv")
    conda:
        "../../envs/data.yaml"
    threads: config["dedup"]["threads"]
    params:
        settings=dedup_settings(),
        code=code("dedup_train.py"),
    script:
        "../scripts/dedup_train.py"


rule find_duplicates:
    input:
        manifest=res("data/manifest.parquet"),
        train_clusters=res("dedup/train_clusters.csv"),
        train_pairs=res("dedup/train_pairs.csv"),
    output:
        clusters=res("dedup/clusters.csv"),
        pairs=res("dedup/pairs.csv"),
        leaks=res("dedup/leaks.csv"),
        montage=report(
            res("dedup/montage.png"),
            caption="../report/montage.rst",
            category="Duplicates",
        ),
    log:
        res("logs/find_duplicates/all.log"),
    benchmark:
        res("benchmarks/find_duplicates/all.tsv")
    conda:
        "../../envs/data.yaml"
    threads: config["dedup"]["threads"]
    params:
        settings=dedup_settings(),
        code=code("dedup.py"),
    script:
        "../scripts/dedup.py"


rule make_folds:
    input:
        manifest=res("data/train_manifest.parquet"),
        task=res("data/task.json"),
        clusters=res("dedup/train_clusters.csv"),
        excluded=res("dedup/excluded.csv"),
    output:
        folds=res("folds.csv"),
    log:
        res("logs/make_folds/all.log"),
    benchmark:
        res("benchmarks/make_folds/all.tsv")
    conda:
        "../../envs/data.yaml"
    params:
        folds=config["folds"],
        entry=STAGE.targets,
        code=code("folds.py", STAGE.targets),
    script:
        "../scripts/folds.py"
