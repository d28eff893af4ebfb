"""Adversarial validation: how well can train and test images be told apart?"""

import pandas as pd

from podium.ensemble.adversarial import (
    adversarial_validation,
    plot_adversarial,
    sample_weights,
    split_features,
)
from podium.glue import job_logging
from podium.tables import load_packed, write_csv, write_json

with job_logging(snakemake) as log:
    i, o, settings = snakemake.input, snakemake.output, snakemake.params.settings
    manifest = pd.read_parquet(i.manifest)
    train, test = (split_features(load_packed(array), pd.read_parquet(index), manifest)
                   for array, index in ((i.train_array, i.train_index),
                                        (i.test_array, i.test_index)))
    result = adversarial_validation(train, test, settings["n_folds"], snakemake.params.seed,
                                    settings["params"], snakemake.threads)
    write_json(result.summary(), o.summary)
    weights = sample_weights(result, tuple(settings["clip"]))
    write_csv(weights.rename_axis("id").reset_index(), o.weights)
    plot_adversarial(result, o.plot)
    log.info("adversarial validation AUC %.3f (0.5: train and test look alike)", result.auc)
