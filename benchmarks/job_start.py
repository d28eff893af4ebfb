"""What a job pays before it works: the CPU and wall time of importing what each rule's job
imports, in a fresh Python, for this tree and a baseline commit side by side.

Why: every Snakemake job is a new Python process, and a test-prediction job on small test sets
or a leaderboard job does little besides its imports. A rule's imports are those of its
script (``workflow/scripts/*.py``, read with ``ast``) and, for the stage rules, the module of
the entry point the task's stage names (the train, predict, gather, ... jobs of classify and
segment). Each is imported in its own ``python -c`` process, the two trees interleaved, and
the process's own CPU time (user + system, ``getrusage``) and wall time from the first import
to the last are kept; the median over ``--repeats`` is reported. Bytecode is written (one
warm-up import each), as it would be in a user's run. Prints JSON (and writes it to
benchmarks/out/job_start.json).

    python benchmarks/job_start.py [--baseline 92cf5ae] [--repeats 5]
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from dag_overhead import export_commit
from report import emit

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks/out"
TASKS = {"classify": "multiclass", "segment": "segmentation"}

LIST_STAGE_MODULES = """
import json, sys
from podium.tasks import stages  # registers every task's stage
from podium.stage import task_stage
out = {}
for family, task in json.loads(sys.argv[1]).items():
    stage = task_stage(task)
    for field, entry in stage.entry_points.items():
        if not field.startswith("check "):  # the config check's look-ups are no jobs
            out[f"{family} {field}"] = [stage.module_of(entry)]
print(json.dumps(out))
"""

PROBE = """
import importlib, json, resource, sys, time
usage, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
for name in sys.argv[1:]:
    importlib.import_module(name)
wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
cpu = (after.ru_utime + after.ru_stime) - (usage.ru_utime + usage.ru_stime)
print(json.dumps({"cpu": cpu, "wall": wall, "heavy": sorted(
    m for m in ("torch", "timm", "albumentations", "segmentation_models_pytorch", "lightgbm",
                "xgboost", "catboost", "sklearn", "matplotlib", "cv2") if m in sys.modules)}))
"""


def script_modules(scripts: Path) -> dict[str, list[str]]:
    """The podium modules each workflow script imports at its top level."""
    found = {}
    for path in sorted(scripts.glob("*.py")):
        names = []
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("podium"):
                names.append(node.module)
            elif isinstance(node, ast.Import):
                names += [a.name for a in node.names if a.name.startswith("podium")]
        if names:
            found[f"script {path.stem}"] = sorted(set(names))
    return found


def python(src: Path, *args: str) -> str:
    """Run ``python args`` with ``src`` first on the path, bytecode written."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(src)
    return subprocess.run([sys.executable, *args], env=env, cwd=src.parent, check=True,
                          capture_output=True, text=True).stdout


def rule_modules(root: Path) -> dict[str, list[str]]:
    """What each rule's job imports in the tree at ``root``: its script's podium modules, or
    for the stage scripts the entry point's module of each task."""
    modules = script_modules(root / "workflow/scripts")
    modules.pop("script stage", None)
    modules.pop("script gpu_stage", None)
    modules.update(json.loads(python(root / "src", "-c", LIST_STAGE_MODULES, json.dumps(TASKS))))
    return modules


def check_tree(root: Path) -> None:
    """Refuse to measure if ``root``'s podium is not the one imported (an install shadowing
    PYTHONPATH would compare a tree with itself)."""
    imported = python(root / "src", "-c", "import podium; print(podium.__file__)").strip()
    if not imported.startswith(str(root / "src")):
        raise SystemExit(f"{root}: podium is imported from {imported}, not from this tree")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="92cf5ae",
                        help="git ref to compare with (default: before the lazy imports)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"this tree": REPO, args.baseline: export_commit(args.baseline,
                                                                  Path(tmp) / "baseline")}
        for root in trees.values():
            check_tree(root)
        modules = {label: rule_modules(root) for label, root in trees.items()}
        rules = sorted(set().union(*(m.keys() for m in modules.values())))
        samples: dict[tuple[str, str], list[dict]] = {}
        for rule in rules:
            for label, root in trees.items():
                if rule in modules[label]:
                    python(root / "src", "-c", PROBE, *modules[label][rule])  # bytecode
        for _ in range(args.repeats):
            for rule in rules:
                for label, root in trees.items():
                    if rule in modules[label]:
                        samples.setdefault((rule, label), []).append(json.loads(
                            python(root / "src", "-c", PROBE, *modules[label][rule])))
    rows = []
    for rule in rules:
        row: dict = {"rule": rule}
        for label in trees:
            runs = samples.get((rule, label))
            if runs:
                row[label] = {"modules": modules[label][rule],
                              "cpu_s": round(statistics.median(r["cpu"] for r in runs), 3),
                              "wall_s": round(statistics.median(r["wall"] for r in runs), 3),
                              "imports": runs[0]["heavy"]}
        rows.append(row)
    emit({"baseline": args.baseline, "repeats": args.repeats, "rules": rows},
         OUT / "job_start.json")


if __name__ == "__main__":
    main()
