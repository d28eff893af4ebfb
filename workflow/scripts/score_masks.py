"""Score the submitted masks against the held-out solution (embedded demo only), at the
size the submission was written at."""

import pandas as pd

from podium.glue import job_logging
from podium.tables import write_json
from podium.task import TaskSpec
from podium.tasks.segment.submission import score_instances, score_segmentation

with job_logging(snakemake) as log:
    i = snakemake.input
    spec = TaskSpec.load(i.task)
    scorer = score_instances if spec.instances else score_segmentation
    score = scorer(i.submission, i.solution, pd.read_parquet(i.manifest), spec,
                   snakemake.params.mask_size)
    write_json(score, snakemake.output.score)
    message = f"held-out {score['metric']}: {score['score']:.4f} on {score['n']} test rows"
    log.info(message)
    print(f"\npodium: {message}\n", flush=True)
