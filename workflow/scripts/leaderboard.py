"""Rank every model, blend and stacker."""

from podium.glue import job_logging
from podium.submit.leaderboard import build_leaderboard
from podium.tables import write_csv

with job_logging(snakemake) as log:
    board = build_leaderboard(snakemake.input.cvs)
    write_csv(board, snakemake.output.leaderboard)
    log.info("leaderboard:\n%s", board.to_string(index=False))
