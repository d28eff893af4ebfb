"""What a job pays besides its work: the CPU and wall time of importing what each rule's job
imports, and of the whole process from start to exit, in a fresh Python, for this tree and a
baseline commit side by side.

Why: every Snakemake job is a new Python process, and a test-prediction job on small test sets
or a leaderboard job does little besides its imports and its interpreter's teardown. A rule's
imports are those of its script (``workflow/scripts/*.py``, read with ``ast``) and, for the
stage rules, the module of the entry point the task's stage names (the train, predict,
gather, ... jobs of classify and segment), imported as the job imports it: inside
``podium.glue.job_logging``, the entry module through ``podium.glue.load_entry`` where the
tree has it. Each rule runs in its own ``python -c`` process, the two trees interleaved; the
process's own CPU time (user + system, ``getrusage``) and wall time from the first import to
the last are kept, and the parent's ``RUSAGE_CHILDREN`` gives the whole process's CPU time,
start-up and exit included. The median over ``--repeats`` is reported. Bytecode is written
(one warm-up run each), as it would be in a user's run. Prints JSON (and writes it to
benchmarks/out/job_start.json).

    python benchmarks/job_start.py [--baseline 92cf5ae] [--repeats 5]
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import resource
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
            out[f"{family} {field}"] = [entry]
print(json.dumps(out))
"""

PROBE = """
import importlib, json, resource, sys, time, types
usage, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
from podium import glue
kind, names = sys.argv[1], sys.argv[2:]
with glue.job_logging(types.SimpleNamespace(log=[], rule="probe")):
    for name in names:
        if kind == "script":
            importlib.import_module(name)
        elif hasattr(glue, "load_entry"):
            glue.load_entry(name)
        else:  # a tree from before load_entry: run_entry imported the module plainly
            importlib.import_module(name.partition(":")[0])
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


def probe(src: Path, kind: str, modules: list[str]) -> dict:
    """One job's imports in a fresh process; with the CPU time of the whole process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    sample = json.loads(python(src, "-c", PROBE, kind, *modules))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    sample["process_cpu"] = ((after.ru_utime + after.ru_stime)
                             - (before.ru_utime + before.ru_stime))
    return sample


def rule_modules(root: Path) -> dict[str, list[str]]:
    """What each rule's job imports in the tree at ``root``: its script's podium modules, or
    for the stage scripts the entry point (``module:function``) of each task."""
    modules = script_modules(root / "workflow/scripts")
    modules.pop("script stage", None)
    modules.pop("script gpu_stage", None)
    modules.update(json.loads(python(root / "src", "-c", LIST_STAGE_MODULES, json.dumps(TASKS))))
    return modules


def kind(rule: str) -> str:
    """``script`` for a workflow script's imports, ``entry`` for a stage's entry module."""
    return "script" if rule.startswith("script ") else "entry"


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
                    probe(root / "src", kind(rule), modules[label][rule])  # bytecode
        for _ in range(args.repeats):
            for rule in rules:
                for label, root in trees.items():
                    if rule in modules[label]:
                        samples.setdefault((rule, label), []).append(
                            probe(root / "src", kind(rule), modules[label][rule]))
    rows = []
    for rule in rules:
        row: dict = {"rule": rule}
        for label in trees:
            runs = samples.get((rule, label))
            if runs:
                row[label] = {"modules": modules[label][rule],
                              "cpu_s": round(statistics.median(r["cpu"] for r in runs), 3),
                              "wall_s": round(statistics.median(r["wall"] for r in runs), 3),
                              "process_cpu_s": round(statistics.median(
                                  r["process_cpu"] for r in runs), 3),
                              "imports": runs[0]["heavy"]}
        rows.append(row)
    emit({"baseline": args.baseline, "repeats": args.repeats, "rules": rows},
         OUT / "job_start.json")


if __name__ == "__main__":
    main()
