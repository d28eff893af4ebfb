"""What Snakemake itself costs: dry-run and no-op rerun times of a 10-model x 5-fold DAG, and
planning time as the competition grows to 100k images.

Why: users rerun after every change, so planning must stay about as cheap as starting
Snakemake at all (the baseline measured here: `snakemake --version`), whatever the number of
models or images; the DAG has jobs per model, fold and stage, never per image. The 10 x 5 run
trains for real on 200 digits (1 epoch, 16 px) so that the no-op rerun checks real outputs.
Planning against 1k-100k images uses a competition folder whose tables list that many ids
(planning reads no image). Prints JSON (and writes it to benchmarks/out/dag_overhead.json).

    python benchmarks/dag_overhead.py [--repeats 3] [--baseline REF] [--skip-full-run]

``--baseline REF`` (a git ref, e.g. ``main``) times the planning rows for that commit's
workflow too, interleaved with this tree's in the same run, so a change's planning cost is
measured side by side; ``--skip-full-run`` leaves out the 10 x 5 training run and the rows
that need it.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml
from report import emit

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks/out"
MODELS = {f"m{k}": {"backbone": "resnet10t" if k % 2 else "regnetx_002", "epochs": 1,
                    "batch_size": 64, "seed": k} for k in range(10)}


def export_commit(ref: str, folder: Path) -> Path:
    """The files of commit ``ref`` in ``folder`` (git archive), to plan with as a baseline."""
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", ref], cwd=REPO, capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def copy_workflow(root: Path, config: dict, source: Path = REPO) -> Path:
    root.mkdir(parents=True)
    for name in ("Snakefile", "config.yaml"):
        shutil.copy2(source / name, root / name)
    for name in ("workflow", "src", "envs"):
        shutil.copytree(source / name, root / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (root / "profiles").symlink_to("workflow/profiles")
    base = yaml.safe_load((root / "config.yaml").read_text())
    for key, value in config.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) and key != "models" \
            else value
    (root / "config.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    return root


def timed(root: Path, *args: str, repeats: int = 1) -> tuple[float, str]:
    """Best wall seconds of ``snakemake <args>`` over ``repeats`` runs, and the last output."""
    best, output = float("inf"), ""
    for _ in range(repeats):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=root,
                              capture_output=True, text=True, check=True)
        best = min(best, time.perf_counter() - start)
        output = proc.stdout + proc.stderr
    return round(best, 3), output


def planned_jobs(output: str) -> int:
    for line in output.splitlines():
        parts = line.split()
        if parts[:1] == ["total"] and len(parts) == 2:
            return int(parts[1])
    return 0


def write_tables(folder: Path, n: int) -> None:
    """train.csv and sample_submission.csv listing ``n`` images (80 % train)."""
    folder.mkdir(parents=True)
    ids = [f"img{i:06d}" for i in range(n)]
    cut = int(0.8 * n)
    pd.DataFrame({"id": ids[:cut], "label": [i % 10 for i in range(cut)]}).to_csv(
        folder / "train.csv", index=False)
    pd.DataFrame({"id": ids[cut:], "label": 0}).to_csv(folder / "sample_submission.csv",
                                                       index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", help="git ref whose planning times to measure beside")
    parser.add_argument("--skip-full-run", action="store_true")
    args = parser.parse_args()
    report: dict = {"benchmark": "dag_overhead", "models": len(MODELS), "folds": 5}
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        tmp = Path(tmp)
        report["snakemake_version_seconds"], _ = timed(tmp, "--version", repeats=args.repeats)
        if args.baseline:
            report["baseline"] = plan_baseline(args.baseline, tmp, args.repeats)

        flow = copy_workflow(tmp / "flow", {
            "competition": {"embedded_max_images": 200}, "preprocess": {"size": 16},
            "folds": {"n_folds": 5}, "models": MODELS})
        report["dry_run_fresh_seconds"], output = timed(flow, "-n", "--quiet", "rules",
                                                        repeats=args.repeats)
        report["jobs"] = planned_jobs(output)
        if not args.skip_full_run:
            full_run(flow, report, args.repeats)

        planning = []
        for n in (1_000, 10_000, 100_000):
            write_tables(tmp / f"competition-{n}", n)
            root = copy_workflow(tmp / f"plan-{n}", {
                "competition": {"embedded": None, "dir": str(tmp / f"competition-{n}"),
                                "embedded_max_images": None},
                "folds": {"n_folds": 5}, "models": MODELS})
            seconds, output = timed(root, "-n", "--quiet", "rules", repeats=args.repeats)
            planning.append({"images": n, "dry_run_seconds": seconds,
                             "jobs": planned_jobs(output)})
        report["planning_by_images"] = planning
        if args.baseline:  # again after this tree's rows, so neither side always goes first
            again = plan_baseline(args.baseline, tmp / "again", args.repeats)
            for key, value in again.items():
                if key.endswith("_seconds"):
                    report["baseline"][key] = min(report["baseline"][key], value)
    emit(report, OUT / "dag_overhead.json")


def plan_baseline(ref: str, tmp: Path, repeats: int) -> dict:
    """The planning rows (fresh dry run, 100k-image dry run) for commit ``ref``."""
    source = export_commit(ref, tmp / "baseline-src")
    flow = copy_workflow(tmp / "baseline-flow", {
        "competition": {"embedded_max_images": 200}, "preprocess": {"size": 16},
        "folds": {"n_folds": 5}, "models": MODELS}, source)
    fresh, _ = timed(flow, "-n", "--quiet", "rules", repeats=repeats)
    write_tables(tmp / "baseline-competition", 100_000)
    root = copy_workflow(tmp / "baseline-plan", {
        "competition": {"embedded": None, "dir": str(tmp / "baseline-competition"),
                        "embedded_max_images": None},
        "folds": {"n_folds": 5}, "models": MODELS}, source)
    big, output = timed(root, "-n", "--quiet", "rules", repeats=repeats)
    return {"ref": ref, "dry_run_fresh_seconds": fresh, "dry_run_100k_seconds": big,
            "jobs_100k": planned_jobs(output)}


def full_run(flow: Path, report: dict, repeats: int) -> None:
    """Train the 10 x 5 DAG for real, then time the no-op rerun and dry run after it."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2"], cwd=flow,
                   capture_output=True, check=True)
    report["full_run_seconds"] = round(time.perf_counter() - start, 1)
    report["noop_rerun_seconds"], output = timed(flow, "--cores", "2", repeats=repeats)
    assert "Nothing to be done" in output
    report["dry_run_done_seconds"], _ = timed(flow, "-n", repeats=repeats)


if __name__ == "__main__":
    main()
