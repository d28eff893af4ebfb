"""Write the embedded digits competition folder."""

from pathlib import Path

from podium.data.digits import write_digits_competition
from podium.glue import job_logging

with job_logging(snakemake):
    # train.csv's folder is the competition folder; the rule names each part as an output so
    # that the train and test sides can depend on their own tables
    write_digits_competition(Path(snakemake.output.train_csv).parent, **snakemake.params.digits)
