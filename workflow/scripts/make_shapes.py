"""Write the embedded segmentation demo: noisy images of ellipses and their RLE masks."""

from pathlib import Path

from podium.glue import job_logging
from podium.tasks.segment.shapes import write_shapes_competition

with job_logging(snakemake):
    write_shapes_competition(Path(snakemake.output.train_csv).parent, **snakemake.params.shapes)
