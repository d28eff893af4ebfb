# The leaderboard of every entry, the submission from its best one, the held-out score of an
# embedded demo and the report's plots; the task plug-in's stage writes, scores and draws.


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
        entry=STAGE.metrics,
        code=code("leaderboard.py", STAGE.metrics),
    script:
        "../scripts/leaderboard.py"


rule write_submission:
    input:
        **stage_inputs(STAGE.submit_inputs),
        sample=str(Path(competition_dir()) / COMPETITION["sample_submission"]),
        leaderboard=res("leaderboard.csv"),
        tests=entry_predictions("test"),
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
        **config_params(STAGE.submit_params),
        names=[name for name, _ in all_entries()],
        encoding=COMPETITION["encoding"],
        entry=STAGE.submit,
        code=code("stage.py", STAGE.submit),
    script:
        "../scripts/stage.py"


if EMBEDDED:

    rule score_submission:
        input:
            **stage_inputs(STAGE.score_inputs),
            solution=res("competition/solution.csv"),
            submission=res("submission.csv"),
            task=res("data/task.json"),
        output:
            score=res("score.json"),
        log:
            res("logs/score_submission/all.log"),
        benchmark:
            res("benchmarks/score_submission/all.tsv")
        localrule: True
        conda:
            "../../envs/ensemble.yaml"
        params:
            **config_params(STAGE.score_params),
            entry=STAGE.score,
            code=code("stage.py", STAGE.score),
        script:
            "../scripts/stage.py"


rule plot_results:
    input:
        **truth_inputs(STAGE.plot_inputs, {"task": "data/task.json"}),
        leaderboard=res("leaderboard.csv"),
        histories=expand(
            res("models/{model}/fold{fold}/history.csv"), model=MODELS, fold=FOLDS
        ),
        cvs=[res(f"{kind}/{name}/cv.json") for name, kind in all_entries()],
        oofs=entry_predictions("oof"),
    output:
        **{
            key: report(
                res(f"plots/{name}"),
                caption=f"../report/{Path(name).stem}.rst",
                category="Leaderboard",
            )
            for key, name in STAGE.plots.items()
        },
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
    log:
        res("logs/plot_results/all.log"),
    benchmark:
        res("benchmarks/plot_results/all.tsv")
    conda:
        "../../envs/ensemble.yaml"
    params:
        names=[name for name, _ in all_entries()],
        entry=STAGE.plot,
        code=code("stage.py", STAGE.plot),
    script:
        "../scripts/stage.py"
