"""Shared fixtures: a private copy of the workflow per test, and a runner for real snakemake."""

from __future__ import annotations

import copy
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from podium.tasks import plugins  # noqa: F401  (registers every task's targets, as entry points do)

REPO = Path(__file__).resolve().parents[1]

TEST_CONFIGS = REPO / ".test"
"""Runnable configs, one folder each: ``.test/<name>/config.yaml`` writes ``results-<name>/``;
a ``prepare.py`` beside it writes the competition folder that config names."""


NO_SLURM = Path(__file__).resolve().parent / "no-slurm"


def local_env() -> dict[str, str]:
    """The environment for a snakemake call that runs locally: ``tests/no-slurm`` (an
    ``scontrol`` that fails at once) first on PATH. Snakemake imports its SLURM executor
    plugin in every call, which asks ``scontrol show config``; where SLURM is installed but no
    controller runs, that takes 9 s to fail, each call. Local runs never use its answer."""
    return {**os.environ, "PATH": os.pathsep.join([str(NO_SLURM), os.environ.get("PATH", "")])}


def dot_test_config(name: str) -> str:
    """The path, relative to a workflow copy's root, of ``.test/<name>/config.yaml``."""
    path = f".test/{name}/config.yaml"
    assert (REPO / path).is_file(), path
    return path


def _configs_only(folder: str, names: list[str]) -> list[str]:
    """copytree's ignore for .test: each config's .yaml and .py files, not the folders its
    prepare.py may have written in the checkout."""
    if Path(folder) == TEST_CONFIGS:
        return []
    return [name for name in names if not name.endswith((".yaml", ".py"))]


CHECKED_CONFIGS: Path | None = None
"""The config check's memory of registry look-ups that passed
(``.snakemake/podium/checked-configs``, keyed by exactly what was looked up, the library
versions and podium's code), shared by every workflow copy of the session: a look-up imports
torch, timm or albumentations (about 5 CPU-seconds), and the copies use the same few names over
and over. A name that failed is never remembered, so every refusal is still looked up.
Set by the ``_shared_config_check_memory`` fixture; None keeps each copy's own."""


@pytest.fixture(scope="session", autouse=True)
def _shared_config_check_memory(tmp_path_factory: pytest.TempPathFactory) -> None:
    global CHECKED_CONFIGS
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # base is <session>/popen-gw<k>: one per session
        base = base.parent
    CHECKED_CONFIGS = base / "podium-checked-configs"
    CHECKED_CONFIGS.mkdir(exist_ok=True)


class Workflow:
    """A copy of podium's workflow in a temp folder, with its own config and results.

    With ``configfile`` (a copy-relative path such as ``.test/binary/config.yaml``) each
    snakemake call gets ``--configfile configfile`` unless it names config files itself, as a
    user runs a .test config; ``config`` is then that file's content and ``write_config``
    writes it back. Without it, ``config`` is the copy's config.yaml."""

    def __init__(self, root: Path, configfile: str | None = None) -> None:
        self.root = root
        for name in ("Snakefile", "config.yaml"):
            shutil.copy2(REPO / name, root / name)
        for name in ("workflow", "src", "envs"):
            shutil.copytree(REPO / name, root / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        shutil.copytree(TEST_CONFIGS, root / ".test", ignore=_configs_only)
        (root / "profiles").symlink_to("workflow/profiles")
        if CHECKED_CONFIGS is not None:
            (root / ".snakemake/podium").mkdir(parents=True)
            (root / ".snakemake/podium/checked-configs").symlink_to(CHECKED_CONFIGS)
        self.configfile = configfile
        self.config = yaml.safe_load(self.config_path.read_text())

    @property
    def config_path(self) -> Path:
        return self.root / (self.configfile or "config.yaml")

    @property
    def results(self) -> Path:
        default = yaml.safe_load((self.root / "config.yaml").read_text())["results"]
        return self.root / self.config.get("results", default)

    def write_config(self) -> None:
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))

    def prepare(self):
        """Run the configfile's ``prepare.py`` (which writes its competition folder) in the
        copy, as a user runs it first; returns what its ``write`` returns."""
        script = self.config_path.parent / "prepare.py"
        return runpy.run_path(str(script))["write"](script.parent)

    def snakemake(self, *args: str, check: bool = True, timeout: int = 900
                  ) -> subprocess.CompletedProcess:
        """Run the real snakemake command in the copy; stdout and stderr together."""
        configfile = ([] if self.configfile is None or "--configfile" in args
                      else ["--configfile", self.configfile])
        slurm = any("profiles/slurm" in arg for arg in args)  # needs the real scontrol
        proc = subprocess.run(
            [sys.executable, "-m", "snakemake", "--cores", "2", *configfile, *args],
            cwd=self.root, text=True, capture_output=True, timeout=timeout,
            env=None if slurm else local_env(),
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


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the xdist_group markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order and group the tests for pytest-xdist (``-n 2 --dist loadgroup`` in pyproject).

    A fixture named ``*_run`` is a complete workflow run that several tests read (module or
    session scope): every test using one joins that run's ``xdist_group``, so one worker
    makes the run once and runs those tests one after another (a test that changes the run
    puts it back before the next one). Slow tests go first, so that the long ones start
    early and the quick unit tests fill the gaps at the end; xdist then takes the groups
    with the most tests first."""
    for item in items:
        runs = sorted(name for name in item.fixturenames if name.endswith("_run"))
        if runs:
            item.add_marker(pytest.mark.xdist_group(runs[0]))
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


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
    """A fresh workflow copy running .test/multiclass (120 digits, 2 folds, 1 epoch), for a
    test that changes its config or its results."""
    return Workflow(tmp_path, dot_test_config("multiclass"))


@pytest.fixture(scope="session")
def finished_tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Workflow:
    """One complete run of .test/multiclass, shared by every test that reads it
    (tests/test_workflow.py) or changes it and puts it back (tests/test_workflow_reruns.py:
    each case ends by checking that nothing would run).

    It is made as a user whose test folder lacks an image would make it: the first call
    runs with one test image missing (the train side trains all the same, the test side
    fails), the image is put back and the next call finishes the run. What the first call
    did is in ``flow.missing_test_image`` (tests/test_workflow.py checks it), so that case
    costs no training of its own."""
    flow = Workflow(tmp_path_factory.mktemp("multiclass"), dot_test_config("multiclass"))
    flow.snakemake("--until", "make_embedded_competition")
    victim = sorted((flow.results / "competition/test").iterdir())[3]
    kept = victim.read_bytes()
    victim.unlink()
    proc = flow.snakemake(check=False)
    flow.missing_test_image = {
        "victim": victim, "returncode": proc.returncode, "output": proc.output,
        "submission": (flow.results / "submission.csv").exists(),
        "weights": sorted(flow.results.glob("models/*/fold*/model.pt"))}
    victim.write_bytes(kept)
    flow.missing_test_image["planned_after_fix"] = flow.planned_jobs()
    flow.snakemake()
    flow.original = copy.deepcopy(flow.config)
    return flow


SECOND_STAGE = 6
"""Test images that binary_run holds back for a competition's second stage."""


@pytest.fixture(scope="session")
def binary_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workflow, Path]:
    """One complete run of .test/binary, its competition folder written by its prepare.py
    (tests/test_workflow_binary.py), with the last SECOND_STAGE test images held back (their
    files, sample-submission rows and solution rows, in ``flow.second_stage``):
    tests/test_workflow_reruns.py puts them back, as a competition's second stage, and runs
    again. What the binary tests read holds before and after."""
    import pandas as pd

    flow = Workflow(tmp_path_factory.mktemp("binary"), dot_test_config("binary"))
    competition = flow.prepare()
    held = flow.root / "second_stage"
    held.mkdir()
    tables = {}
    for name in ("sample_submission.csv", "solution.csv"):
        tables[name] = pd.read_csv(competition / name, dtype=str)
        tables[name].iloc[:-SECOND_STAGE].to_csv(competition / name, index=False)
    for image_id in tables["sample_submission.csv"]["id"].iloc[-SECOND_STAGE:]:
        (competition / f"test/{image_id}.png").rename(held / f"{image_id}.png")
    flow.second_stage = held, tables
    flow.snakemake()
    return flow, competition


@pytest.fixture(scope="session")
def source_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workflow, Path]:
    """One complete run of .test/columns, its competition folder written by its prepare.py:
    odd column names (tests/test_workflow_columns.py) and a pseudo-labelling second round
    (tests/test_workflow_pseudo.py) in one run."""
    flow = Workflow(tmp_path_factory.mktemp("columns"), dot_test_config("columns"))
    competition = flow.prepare()
    flow.snakemake()
    return flow, competition


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

