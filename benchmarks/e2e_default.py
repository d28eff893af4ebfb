"""End-to-end timing of the default experiment: wall time, time per stage, and the share of
the machine's time spent outside model training (Snakemake, imports, IO, idle slots).

Runs the real workflow on the embedded digits into a fresh results folder, then a no-op rerun
and a dry run. Prints JSON (and writes it to benchmarks/out/e2e_default.json).

    python benchmarks/e2e_default.py [--cores 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd
from report import emit

REPO = Path(__file__).resolve().parents[1]


def _snakemake(results: Path, cores: int, *args: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "snakemake", "--cores", str(cores), "--config",
                    f"results={results}", *args], cwd=REPO, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def _job_seconds(results: Path) -> dict[str, list[float]]:
    """Seconds of every job from Snakemake's benchmark: files, grouped by rule."""
    per_rule: dict[str, list[float]] = defaultdict(list)
    for tsv in sorted((results / "benchmarks").glob("*/*.tsv")):
        per_rule[tsv.parent.name].append(float(pd.read_csv(tsv, sep="\t")["s"].iloc[0]))
    return per_rule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cores", type=int, default=os.cpu_count())
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = Path(tmp) / "results"
        wall = _snakemake(results, args.cores)
        noop = _snakemake(results, args.cores)
        dry = _snakemake(results, args.cores, "-n")
        per_rule = _job_seconds(results)
        fold_metrics = [json.loads(p.read_text())
                        for p in sorted(results.glob("models/*/fold*/metrics.json"))]
        score = json.loads((results / "score.json").read_text())
        board = pd.read_csv(results / "leaderboard.csv")
    training = sum(m["fit_seconds"] + m["predict_seconds"] for m in fold_metrics)
    train_jobs = sum(per_rule["train_model"])
    job_total = sum(sum(v) for v in per_rule.values())
    capacity = wall * args.cores
    report = {
        "benchmark": "e2e_default",
        "cores": args.cores,
        "wall_seconds": round(wall, 1),
        "noop_rerun_seconds": round(noop, 2),
        "dry_run_seconds": round(dry, 2),
        "held_out_accuracy": score["score"],
        "best": board.iloc[0][["name", "cv_mean"]].to_dict(),
        "stage_seconds": {rule: round(sum(v), 1) for rule, v in per_rule.items()},
        "stage_jobs": {rule: len(v) for rule, v in per_rule.items()},
        "training_loop_seconds": round(training, 1),
        "train_job_overhead_seconds": round(train_jobs - training, 1),
        "share_outside_training_of_job_time": round(1 - training / job_total, 3),
        "share_outside_training_of_machine_time": round(1 - training / capacity, 3),
        "wall_minus_packed_job_seconds": round(wall - job_total / args.cores, 1),
        "baseline_training_only_wall_seconds": round(training / args.cores, 1),
        "wall_over_training_only_baseline": round(wall / (training / args.cores), 2),
        "train_images_per_second_per_job": round(
            sum(m["train_images_per_second"] for m in fold_metrics) / len(fold_metrics), 1),
    }
    out = REPO / "benchmarks/out/e2e_default.json"
    emit(report, out)


if __name__ == "__main__":
    main()
