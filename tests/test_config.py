"""The shipped config, schema, conda envs and Snakemake lint/format checks."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib

import jsonschema
import pytest
import yaml
from conftest import REPO

SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())


def _validate(config: dict) -> None:
    jsonschema.validate(config, SCHEMA)


def test_default_config_is_valid():
    _validate(yaml.safe_load((REPO / "config.yaml").read_text()))


@pytest.mark.parametrize(("path", "value"), [
    (("folds", "n_folds"), "five"),
    (("preprocess", "clahe"), "yes"),
    (("models", "resnet10t", "lr"), "fast"),
    (("competition", "task"), "regresion"),
])
def test_wrong_type_is_rejected(path, value):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(jsonschema.ValidationError) as err:
        _validate(config)
    assert list(err.value.absolute_path) == list(path)


def test_unknown_key_is_rejected():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["models"]["resnet10t"]["learning_rate"] = 0.1
    with pytest.raises(jsonschema.ValidationError, match="learning_rate"):
        _validate(config)


def test_own_competition_needs_dir():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["competition"]["embedded"] = None
    with pytest.raises(jsonschema.ValidationError):
        _validate(config)
    config["competition"]["dir"] = "/data/comp"
    _validate(config)


def _requirement_names(requirements: list[str]) -> dict[str, str]:
    out = {}
    for req in requirements:
        match = re.match(r"([A-Za-z0-9_.-]+)\s*(.*)", req)
        out[match.group(1).lower()] = match.group(2).replace(" ", "")
    return out


def test_conda_envs_match_pyproject():
    """envs/*.yaml (for users with conda) name the packages and bounds pyproject installs."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    declared = _requirement_names(pyproject["project"]["dependencies"])
    aliases = {"opencv-python-headless": "opencv-python-headless", "python": None, "pip": None}
    seen = set()
    for env_file in sorted((REPO / "envs").glob("*.yaml")):
        env = yaml.safe_load(env_file.read_text())
        assert env["channels"][0] == "conda-forge"
        entries = []
        for dep in env["dependencies"]:
            entries += dep["pip"] if isinstance(dep, dict) else [dep]
        for name, bound in _requirement_names(entries).items():
            if aliases.get(name, name) is None:
                continue
            assert name in declared, f"{env_file.name}: {name} is not in pyproject.toml"
            assert bound == declared[name], f"{env_file.name}: {name}{bound} != pyproject"
            seen.add(name)
    missing = set(declared) - seen - {"snakemake"}
    assert not missing, f"packages in pyproject but in no env: {missing}"


@pytest.mark.slow
@pytest.mark.parametrize("profile", ["workflow/profiles/default", "workflow/profiles/slurm"])
@pytest.mark.parametrize("demo", [None, "workflow/demos/shapes.yaml"])
def test_snakemake_lint_is_clean(profile, demo):
    """Both profiles, for the classification DAG and the segmentation demo's."""
    extra = ["--configfile", demo] if demo else []
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--lint", "--workflow-profile",
                           profile, *extra], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Lints for" not in proc.stdout + proc.stderr
    assert f"profile {profile}" in proc.stdout + proc.stderr  # the profile was loaded


@pytest.mark.slow
def test_snakefmt_is_clean():
    proc = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "."], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_is_clean():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
