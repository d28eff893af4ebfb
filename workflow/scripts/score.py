"""Score the submission against the held-out solution and print it."""

from podium.glue import job_logging
from podium.submit.score import score_submission
from podium.tables import write_json
from podium.task import TaskSpec

with job_logging(snakemake) as log:
    score = score_submission(snakemake.input.submission, snakemake.input.solution,
                             TaskSpec.load(snakemake.input.task), snakemake.params.values)
    write_json(score, snakemake.output.score)
    message = f"held-out {score['metric']}: {score['score']:.4f} on {score['n']} test images"
    log.info(message)
    print(f"\npodium: {message}\n", flush=True)
