"""Write the embedded digits competition folder."""

from podium.data.digits import write_digits_competition
from podium.glue import job_logging

with job_logging(snakemake):
    write_digits_competition(snakemake.output[0], **snakemake.params.digits)
