"""Shared fixtures: a private copy of the workflow per test, and a runner for real snakemake."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

TINY_CONFIG = {
    "competition": {"embedded": "digits", "embedded_max_images": 120},
    "preprocess": {"size": 16, "threads": 1},
    "folds": {"n_folds": 2, "seed": 1},
    "models": {
        "resnet10t": {"backbone": "resnet10t", "epochs": 1, "batch_size": 32,
                      "tta": ["identity", "hflip"]},
        "regnetx_002": {"backbone": "regnetx_002", "epochs": 1, "batch_size": 32},
    },
    "ensemble": {
        "blends": {"mean": {"method": "mean"}},
        "stackers": {
            "lightgbm": {"library": "lightgbm",
                         "params": {"n_estimators": 10, "min_child_samples": 2}},
            "xgboost": {"library": "xgboost", "params": {"n_estimators": 10}},
            "catboost": {"library": "catboost", "params": {"iterations": 10}},
        },
    },
}


class Workflow:
    """A copy of podium's workflow in a temp folder, with its own config and results."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for name in ("Snakefile", "config.yaml"):
            shutil.copy2(REPO / name, root / name)
        for name in ("workflow", "src", "envs"):
            shutil.copytree(REPO / name, root / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        (root / "profiles").symlink_to("workflow/profiles")
        self.config = yaml.safe_load((root / "config.yaml").read_text())

    @property
    def results(self) -> Path:
        return self.root / self.config["results"]

    def write_config(self) -> None:
        (self.root / "config.yaml").write_text(yaml.safe_dump(self.config, sort_keys=False))

    def snakemake(self, *args: str, check: bool = True, timeout: int = 900
                  ) -> subprocess.CompletedProcess:
        """Run the real snakemake command in the copy; stdout and stderr together."""
        proc = subprocess.run(
            [sys.executable, "-m", "snakemake", "--cores", "2", *args], cwd=self.root,
            text=True, capture_output=True, timeout=timeout,
        )
        proc.output = proc.stdout + proc.stderr
        if check and proc.returncode != 0:
            raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.output[-6000:]}")
        return proc

    def planned_jobs(self, *args: str) -> dict[str, int]:
        """Rule -> job count that a dry run plans (empty when nothing would run)."""
        out = self.snakemake("-n", "--quiet", "rules", *args).output
        counts: dict[str, int] = {}
        in_table = False
        for line in out.splitlines():
            parts = line.split()
            if parts[:2] == ["job", "count"]:
                in_table = True
                continue
            if in_table and len(parts) == 2 and parts[1].isdigit() and parts[0] != "total":
                counts[parts[0]] = int(parts[1])
        return counts


def _merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


@pytest.fixture
def workflow(tmp_path: Path) -> Workflow:
    """A fresh workflow copy configured with the tiny config (few images, 2 folds, 1 epoch)."""
    flow = Workflow(tmp_path)
    flow.config = _merge(flow.config, TINY_CONFIG)
    flow.write_config()
    return flow


@pytest.fixture(scope="module")
def finished_tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Workflow:
    """One complete tiny run shared by the tests that only read its artifacts."""
    flow = Workflow(tmp_path_factory.mktemp("tiny"))
    flow.config = _merge(flow.config, TINY_CONFIG)
    flow.write_config()
    flow.snakemake()
    return flow
