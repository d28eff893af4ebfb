"""Rank every model, blend and stacker (by the competition metric's direction: the task
plug-in's own metrics are registered by importing ``params.entry``, its stage's ``metrics``)."""

from importlib import import_module

from podium.glue import job_logging
from podium.submit.leaderboard import build_leaderboard
from podium.tables import write_csv

with job_logging(snakemake) as log:
    if snakemake.params.entry:
        import_module(snakemake.params.entry)
    board = build_leaderboard(snakemake.input.cvs)
    write_csv(board, snakemake.output.leaderboard)
    log.info("leaderboard:\n%s", board.to_string(index=False))
