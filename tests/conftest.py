"""Shared fixtures: a private copy of the workflow per test, and a runner for real snakemake."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from podium.tasks import plugins  # noqa: F401  (registers every task's targets, as entry points do)

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


def reversed_keys(value):
    """``value`` with every mapping's keys in reverse order, recursively; lists as they are."""
    if isinstance(value, dict):
        return {k: reversed_keys(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reversed_keys(v) for v in value]
    return value


class _Spelled(str):
    """A number as it is to be written in YAML: the text, unquoted."""


class _SpellingDumper(yaml.SafeDumper):
    pass


_SpellingDumper.add_representer(
    _Spelled,
    lambda dumper, text: dumper.represent_scalar(
        dumper.resolve(yaml.ScalarNode, str(text), (True, False)), str(text)))


def _exponent(x: float) -> str:
    """0.003 as 3e-3, 0.95 as 9.5e-1, 1.1 as 1.1e+0: strings to PyYAML (YAML 1.1 floats need a
    dot and a signed exponent), floats to YAML 1.2 and to podium."""
    from decimal import Decimal

    mantissa, exponent = f"{Decimal(repr(x)):e}".split("e")
    text = f"{mantissa}e{int(exponent)}" if int(exponent) else f"{mantissa}e+0"
    assert float(text) == x, (x, text)
    return text


def _respelled(value, free: bool, free_keys: tuple[str, ...]):
    if isinstance(value, dict):
        return {k: _respelled(v, free or k in free_keys, free_keys) for k, v in value.items()}
    if isinstance(value, list):
        return [_respelled(v, free, free_keys) for v in value]
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and not value.is_integer():
        return _Spelled(_exponent(value))
    if free:  # a library's keyword arguments: 10 and 10.0 may differ there
        return value
    if isinstance(value, float):
        return _Spelled(str(int(value)))
    if isinstance(value, int):
        return _Spelled(f"{value}.0")
    return value


def respelled_yaml(config: dict,
                   free_keys: tuple[str, ...] = ("params", "augment", "loss", "sampler")
                   ) -> str:
    """``config`` as YAML with the same numbers spelled otherwise: fractions in exponent
    notation (``3e-3``), integral floats as ints (``2``) and ints as floats (``15.0``) where the
    schema types them, i.e. outside the free-form ``free_keys`` sections."""
    return yaml.dump(_respelled(config, False, free_keys), Dumper=_SpellingDumper,
                     sort_keys=False)


def recorded_params(root: Path) -> set[str]:
    """Every param repr that Snakemake recorded for the outputs of the run in ``root``."""
    import json

    records = [json.loads(p.read_text()) for p in (root / ".snakemake/metadata").rglob("*")
               if p.is_file()]
    return {param for record in records for param in record.get("params") or []}


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


@pytest.fixture(scope="module")
def digits_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One valid digits folder (30 train, 10 test), written once per module and copied per test.

    ``test_fraction=0.25`` because with 40 images the default 0.2 leaves 8 test images for 10
    classes, which the stratified split in ``write_digits_competition`` refuses.
    """
    from podium.data.digits import write_digits_competition

    root = tmp_path_factory.mktemp("digits_template") / "competition"
    write_digits_competition(root, max_images=40, test_fraction=0.25)
    return root


@pytest.fixture
def comp(digits_template: Path, tmp_path: Path) -> Path:
    """A private, valid competition folder that a test may break."""
    root = tmp_path / "competition"
    shutil.copytree(digits_template, root)
    return root

