"""Score the submitted masks against the held-out solution (embedded demo only)."""

import pandas as pd

from podium.glue import job_logging
from podium.segment.submission import score_segmentation
from podium.tables import write_json
from podium.task import TaskSpec

with job_logging(snakemake) as log:
    i = snakemake.input
    score = score_segmentation(i.submission, i.solution, pd.read_parquet(i.manifest),
                               TaskSpec.load(i.task))
    write_json(score, snakemake.output.score)
    message = f"held-out dice: {score['score']:.4f} on {score['n']} test images"
    log.info(message)
    print(f"\npodium: {message}\n", flush=True)
