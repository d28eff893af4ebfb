if EMBEDDED:

    rule make_digits_competition:
        output:
            directory(res("competition")),
        log:
            res("logs/make_digits_competition/all.log"),
        benchmark:
            res("benchmarks/make_digits_competition/all.tsv")
        conda:
            "../../envs/data.yaml"
        params:
            digits={
                "max_images": COMPETITION["embedded_max_images"],
                "multilabel": COMPETITION["embedded"] == "digits_multilabel",
            },
            code=code("data", script="make_digits.py"),
        script:
            "../scripts/make_digits.py"


rule ingest_competition:
    input:
        competition_inputs(),
    output:
        manifest=res("data/manifest.parquet"),
        task=res("data/task.json"),
        skipped=res("data/skipped.csv"),
    log:
        res("logs/ingest_competition/all.log"),
    benchmark:
        res("benchmarks/ingest_competition/all.tsv")
    conda:
        "../../envs/data.yaml"
    threads: config["preprocess"]["threads"]
    params:
        competition=dict(
            {k: v for k, v in COMPETITION.items() if not k.startswith("embedded")},
            dir=competition_dir(),
        ),
        code=code("data", "metrics", "task", script="ingest.py"),
    script:
        "../scripts/ingest.py"


rule find_duplicates:
    input:
        manifest=res("data/manifest.parquet"),
        task=res("data/task.json"),
    output:
        clusters=res("dedup/clusters.csv"),
        pairs=res("dedup/pairs.csv"),
        leaks=res("dedup/leaks.csv"),
        conflicts=res("dedup/conflicts.csv"),
        excluded=res("dedup/excluded.csv"),
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
        settings={
            k: v
            for k, v in config["dedup"].items()
            if k not in ("threads", "leak_labels")
        },
        code=code("data", "preprocess", script="dedup.py"),
    script:
        "../scripts/dedup.py"


rule make_folds:
    input:
        manifest=res("data/manifest.parquet"),
        task=res("data/task.json"),
        clusters=res("dedup/clusters.csv"),
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
        code=code("data", "task", script="folds.py"),
    script:
        "../scripts/folds.py"
