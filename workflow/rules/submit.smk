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


rule write_submission:
    input:
        sample=str(Path(competition_dir()) / COMPETITION["sample_submission"]),
        leaderboard=res("leaderboard.csv"),
        leaks=res("dedup/leaks.csv"),
        tests=[res(f"{kind}/{name}/test.parquet") for name, kind in all_entries()],
        task=res("data/task.json"),
    output:
        submission=res("submission.csv"),
    log:
        res("logs/write_submission/all.log"),
    benchmark:
        res("benchmarks/write_submission/all.tsv")
    conda:
        "../../envs/ensemble.yaml"
    params:
        names=[name for name, _ in all_entries()],
        leak_labels=config["dedup"]["leak_labels"],
        values=config["submission"]["values"],
        encoding=COMPETITION["encoding"],
        code=code("submit.py"),
    script:
        "../scripts/submit.py"


if EMBEDDED:

    rule score_submission:
        input:
            solution=res("competition/solution.csv"),
            submission=res("submission.csv"),
            task=res("data/task.json"),
        output:
            score=res("score.json"),
        log:
            res("logs/score_submission/all.log"),
        benchmark:
            res("benchmarks/score_submission/all.tsv")
        conda:
            "../../envs/ensemble.yaml"
        params:
            values=config["submission"]["values"],
            code=code("score.py"),
        script:
            "../scripts/score.py"


rule plot_results:
    input:
        leaderboard=res("leaderboard.csv"),
        histories=expand(
            res("models/{model}/fold{fold}/history.csv"), model=MODELS, fold=FOLDS
        ),
        cvs=[res(f"{kind}/{name}/cv.json") for name, kind in all_entries()],
        oofs=[res(f"{kind}/{name}/oof.parquet") for name, kind in all_entries()],
        folds=res("folds.csv"),
        manifest=res("data/train_manifest.parquet"),
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
        best=report(
            res("plots/best_entry.png"),
            caption="../report/best_entry.rst",
            category="Leaderboard",
        ),
        curves=report(
            res("plots/learning_curves.png"),
            caption="../report/learning_curves.rst",
            category="Training",
        ),
    log:
        res("logs/plot_results/all.log"),
    benchmark:
        res("benchmarks/plot_results/all.tsv")
    conda:
        "../../envs/ensemble.yaml"
    params:
        names=[name for name, _ in all_entries()],
        code=code("plots.py"),
    script:
        "../scripts/plots.py"
