"""Near-duplicate detection on planted-duplicate JPEG sets: podium's ``find_duplicates``
against imagededup's PHash (what users pick today), same run, same files.

Why: the design claims pHash candidates confirmed by thumbnail correlation are both faster
and more precise than a plain pHash search; this measures speed, thread scaling, precision
and recall at two sizes, and extrapolates podium's time to 100k images (thumbnails linear in
N, pair scan quadratic). Planted sets are generated once (about 11 ms an image) and cached
under benchmarks/out/planted-<N>-<flips|noflips>/. Prints JSON (and writes it to
benchmarks/out/dedup_planted.json).

    python benchmarks/dedup_planted.py [--sizes 5000 20000] [--flip-size 5000]
        [--repeats 3] [--baseline-repeats 2] [--skip-imagededup] [--out dedup_planted.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
from report import emit
from threadpoolctl import threadpool_limits

import podium.data.dedup as dedup
import podium.data.neardup as neardup
from podium.data.neardup import NearDuplicateSettings
from podium.synthetic import PlantedSet, score_pairs, write_planted_set

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks/out"
IMAGE_SIZE = 256
DUPLICATE_SHARE = 0.2


def planted_set(n: int, flips: bool, threads: int = 2) -> tuple[PlantedSet, Path]:
    """The planted set of ``n`` images (20 % altered copies) and its image folder; generated
    once, then read back from ``files.csv`` (written last, so a cut-off run regenerates)."""
    folder = OUT / f"planted-{n}-{'flips' if flips else 'noflips'}"
    images, table = folder / "images", folder / "files.csv"
    if not table.exists():
        n_duplicates = round(DUPLICATE_SHARE * n)
        planted = write_planted_set(images, n - n_duplicates, n_duplicates, size=IMAGE_SIZE,
                                    flips=flips, threads=threads)
        files = planted.files.copy()
        files["file"] = [Path(p).name for p in files["path"]]
        files["md5"] = [hashlib.md5(Path(p).read_bytes()).hexdigest() for p in files["path"]]
        tmp = table.with_name(".files.csv.tmp")
        files.drop(columns="path").to_csv(tmp, index=False)
        tmp.replace(table)
    files = pd.read_csv(table)
    files["path"] = [str(images / name) for name in files["file"]]
    duplicates = files[files["id"] != files["source"]]
    pairs = {frozenset(p) for p in zip(duplicates["source"], duplicates["id"], strict=True)}
    return PlantedSet(files, pairs), images


def _warm(paths: list[str]) -> None:
    """Read every file once so both tools start from the page cache."""
    for path in paths:
        Path(path).read_bytes()


def _machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy since boot (all processes)."""
    with open("/proc/stat") as stat:
        ticks = [int(x) for x in stat.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    """CPU seconds of this process, its reaped children (imagededup's worker pool) and its
    live children (a benchmark's own worker processes), read from /proc."""
    times = os.times()
    total = times.user + times.system + times.children_user + times.children_system
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:  # exited meanwhile; counted once reaped
                continue
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def wait_for_quiet(limit_s: float, max_busy_cores: float = 0.3) -> float:
    """Wait (up to ``limit_s``) for a second in which other processes use under
    ``max_busy_cores``: the machine is shared. Returns the busy cores last seen."""
    deadline = time.monotonic() + limit_s
    while True:
        busy, own = _machine_busy_s(), _own_cpu_s()
        time.sleep(1.0)
        cores = (_machine_busy_s() - busy) - (_own_cpu_s() - own)
        if cores < max_busy_cores or time.monotonic() > deadline:
            return round(cores, 2)


def measure(function: Callable[[], dict], quiet_s: float) -> dict:
    """Wall seconds of ``function()`` with its CPU seconds and the cores other processes kept
    busy meanwhile (from /proc/stat), merged into the dict it returns."""
    wait_for_quiet(quiet_s)
    busy, own = _machine_busy_s(), _own_cpu_s()
    start = time.perf_counter()
    result = function()
    wall = time.perf_counter() - start
    own_cpu = _own_cpu_s() - own
    others = max(0.0, (_machine_busy_s() - busy) - own_cpu) / wall
    return {"seconds": wall, "cpu_s": own_cpu, "others_busy_cores": others, **result}


def summarize(runs: list[dict], n: int) -> dict:
    """Best-of-runs wall time (the least disturbed by others on the shared machine), its
    parts, every run's time and load, and the accuracy (identical across runs)."""
    best = min(runs, key=lambda run: run["seconds"])
    timings = {key: round(value, 3) for key, value in best.items()
               if isinstance(value, float) and key not in ("precision", "recall")}
    return {
        **best, **timings,
        "others_busy_cores": round(best["others_busy_cores"], 2),
        "images_per_s": round(n / best["seconds"], 1),
        "seconds_all_runs": [round(run["seconds"], 3) for run in runs],
        "others_busy_cores_all_runs": [round(run["others_busy_cores"], 2) for run in runs],
    }


def _timed(spans: dict[str, list[float]], name: str, function: Callable) -> Callable:
    """``function`` recording the wall-clock span from its first call's start to its last
    call's end (right for one call, sequential calls and calls from worker threads)."""

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        result = function(*args, **kwargs)
        span = spans.setdefault(name, [start, start])
        span[0], span[1] = min(span[0], start), max(span[1], time.perf_counter())
        return result

    return wrapper


class _CandidateCount(logging.Handler):
    """Reads the hash-candidate count from find_near_duplicates' log record."""

    count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg.startswith("near duplicates:"):
            self.count = int(record.args[0])


def run_podium(planted: PlantedSet, flip_invariant: bool, threads: int) -> dict:
    """One ``find_duplicates`` with its parts timed inside the same call (wrapping the
    functions it looks up): thumbnails, the pair scan, and within it the Hamming scan for
    hash candidates (the rest is their correlation check). BLAS gets ``threads`` threads, as
    Snakemake's OPENBLAS_NUM_THREADS gives the workflow's job."""
    settings = NearDuplicateSettings(flip_invariant=flip_invariant)
    originals = (dedup.compute_signatures, dedup.find_near_duplicates,
                 neardup.hash_candidates)
    spans: dict[str, list[float]] = {}
    dedup.compute_signatures = _timed(spans, "thumbnails_s", originals[0])
    dedup.find_near_duplicates = _timed(spans, "pair_scan_s", originals[1])
    neardup.hash_candidates = _timed(spans, "hamming_s", originals[2])
    counter, level = _CandidateCount(), neardup.log.level
    neardup.log.addHandler(counter)
    neardup.log.setLevel(logging.INFO)
    try:
        with threadpool_limits(limits=threads, user_api="blas"):
            _, pairs = dedup.find_duplicates(planted.files, settings, threads)
    finally:
        (dedup.compute_signatures, dedup.find_near_duplicates,
         neardup.hash_candidates) = originals
        neardup.log.removeHandler(counter)
        neardup.log.setLevel(level)
    parts = {name: end - start for name, (start, end) in spans.items()}
    parts["confirm_s"] = parts["pair_scan_s"] - parts["hamming_s"]
    return {"threads": threads, "settings": asdict(settings), **parts,
            "hash_candidates": counter.count, **score_pairs(pairs, planted)}


def run_imagededup(planted: PlantedSet, images: Path) -> dict:
    """imagededup PHash with its defaults (max distance 10, one worker per CPU)."""
    from imagededup.methods import PHash

    hasher = PHash(verbose=False)
    start = time.perf_counter()
    encodings = hasher.encode_images(image_dir=str(images))
    encoded = time.perf_counter()
    duplicates = hasher.find_duplicates(encoding_map=encodings, max_distance_threshold=10,
                                        scores=False)
    done = time.perf_counter()
    found = sorted({tuple(sorted((Path(a).stem, Path(b).stem)))
                    for a, others in duplicates.items() for b in others})
    pairs = pd.DataFrame(found, columns=["id_a", "id_b"])
    return {
        "workers": os.cpu_count(),
        "images_encoded": len(encodings),
        "encode_s": encoded - start,
        "find_s": done - encoded,
        **score_pairs(pairs, planted),
    }


def compare(planted: PlantedSet, images: Path, flips: bool, args: argparse.Namespace) -> dict:
    """podium on 1 and 2 threads (runs interleaved, so load from others hits both alike),
    then imagededup, on the same files."""
    n = len(planted.files)
    _warm(planted.files["path"].tolist())
    runs: dict[int, list[dict]] = {1: [], 2: []}
    for _ in range(args.repeats):
        for threads in (1, 2):
            runs[threads].append(measure(lambda t=threads: run_podium(planted, flips, t),
                                         args.quiet_wait))
    row = {"n": n, "flips": flips, "podium_1": summarize(runs[1], n),
           "podium_2": summarize(runs[2], n)}
    row["thread_scaling_2_vs_1"] = round(
        row["podium_1"]["seconds"] / row["podium_2"]["seconds"], 2)
    if not args.skip_imagededup:
        baseline = [measure(lambda: run_imagededup(planted, images), args.quiet_wait)
                    for _ in range(args.baseline_repeats)]
        row["imagededup_phash"] = summarize(baseline, n)
        for threads in (1, 2):
            row[f"speedup_vs_imagededup_{threads}_threads"] = round(
                row["imagededup_phash"]["seconds"] / row[f"podium_{threads}"]["seconds"], 1)
    print(json.dumps(row), flush=True)
    return row


def _exponent(n1: int, t1: float, n2: int, t2: float) -> float:
    return round(math.log(t2 / t1) / math.log(n2 / n1), 3)


def extrapolate(rows: list[dict], targets: tuple[int, ...] = (100_000, 1_000_000)) -> dict:
    """Seconds at ``targets`` from the 2-thread runs: everything but the pair scan as
    ``a * N`` and the pair scan as ``b * N^2``, each a geometric-mean fit over the sizes (the
    scan's linear part and fixed costs are folded into ``b``: an overestimate)."""
    sizes = np.array([r["n"] for r in rows], dtype=float)
    scan = np.array([r["podium_2"]["pair_scan_s"] for r in rows])
    linear = np.array([r["podium_2"]["seconds"] for r in rows]) - scan
    a = float(np.exp(np.mean(np.log(linear / sizes))))
    b = float(np.exp(np.mean(np.log(scan / sizes**2))))
    return {
        "linear_s_per_image": a,
        "quadratic_s_per_pair_of_images": b,
        "predicted_seconds": {str(n): {"linear_s": round(a * n, 1),
                                       "pair_scan_s": round(b * n * n, 1),
                                       "total_s": round(a * n + b * n * n, 1)}
                              for n in targets},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    parser.add_argument("--flip-size", type=int, default=5000,
                        help="size of the set with flipped copies (0 skips it)")
    parser.add_argument("--repeats", type=int, default=3, help="podium runs per setting")
    parser.add_argument("--baseline-repeats", type=int, default=2, help="imagededup runs")
    parser.add_argument("--quiet-wait", type=float, default=60,
                        help="seconds to wait before each run for other processes to go quiet")
    parser.add_argument("--skip-imagededup", action="store_true")
    parser.add_argument("--out", default="dedup_planted.json", help="file under benchmarks/out")
    args = parser.parse_args()

    rows = [compare(*planted_set(n, flips=False), False, args) for n in args.sizes]
    report: dict = {"benchmark": "dedup_planted", "cpus": os.cpu_count(),
                    "image_size": IMAGE_SIZE, "duplicate_share": DUPLICATE_SHARE,
                    "timing": "best of the runs; others_busy_cores: load from other processes",
                    "no_flips": rows}
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        tools = ["podium_1", "podium_2"] + ([] if args.skip_imagededup else ["imagededup_phash"])
        report["scaling_exponent"] = {
            tool: _exponent(first["n"], first[tool]["seconds"], last["n"], last[tool]["seconds"])
            for tool in tools}
        report["extrapolation_2_threads"] = extrapolate(rows)
    if args.flip_size:
        report["flips"] = compare(*planted_set(args.flip_size, flips=True), True, args)

    out = OUT / args.out
    emit(report, out)


if __name__ == "__main__":
    main()
