# Blends and stackers of every model's predictions, fitted fold by fold on OOF where they learn
# from labels; each writes a leaderboard entry like a model's. The task plug-in's stage says
# which prediction files an entry holds, what scores it and which entry point runs.


rule blend_models:
    input:
        **truth_inputs(),
        oofs=model_predictions("oof"),
        tests=model_predictions("test"),
    output:
        **entry_files("ensemble/{blend}"),
    log:
        res("logs/blend_models/{blend}.log"),
    benchmark:
        res("benchmarks/blend_models/{blend}.tsv")
    conda:
        "../../envs/ensemble.yaml"
    params:
        settings=lambda wildcards: config["ensemble"]["blends"][wildcards.blend],
        models=MODELS,
        entry=STAGE.blend,
        code=code("stage.py", STAGE.blend),
    script:
        "../scripts/stage.py"


rule stack_models:
    input:
        **truth_inputs(),
        oofs=model_predictions("oof"),
        tests=model_predictions("test"),
        images=res("data/manifest.parquet"),
    output:
        **entry_files("ensemble/{stacker}"),
    log:
        res("logs/stack_models/{stacker}.log"),
    benchmark:
        res("benchmarks/stack_models/{stacker}.tsv")
    conda:
        "../../envs/ensemble.yaml"
    threads: config["ensemble"]["threads"]
    params:
        settings=lambda wildcards: config["ensemble"]["stackers"][wildcards.stacker],
        models=MODELS,
        seed=config["ensemble"]["seed"],
        entry=STAGE.stack,
        code=code("stage.py", STAGE.stack),
    script:
        "../scripts/stage.py"
