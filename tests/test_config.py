"""The shipped config, schema, conda envs and Snakemake lint/format checks."""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
import tomllib

import jsonschema
import pytest
import yaml
from conftest import REPO, local_env

SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())


def _validate(config: dict) -> None:
    jsonschema.validate(config, SCHEMA)


TEST_CONFIGS = sorted((REPO / ".test").glob("*/config.yaml"))
DEMOS = ("shapes", "shapes-classes", "shapes-instances")
"""The README's segmentation demos (a few minutes each): the tests run their variants at test
size (.test/segmentation-*)."""


def test_each_test_config_runs_with_one_command_into_its_own_results():
    """.test/<name>/config.yaml writes results-<name>/ (no two runs collide), names a folder of
    its own if it needs one (written by the prepare.py beside it) and says in its header how
    to run it; the tests run every one but the demos, which the README runs."""
    workflow_tests = [p.read_text() for p in (REPO / "tests").glob("*.py")
                      if p.name.startswith(("test_workflow", "conftest"))]
    readme = (REPO / "README.md").read_text()
    assert len(TEST_CONFIGS) > 10
    for path in TEST_CONFIGS:
        name, text = path.parent.name, path.read_text()
        config = yaml.safe_load(text)
        assert config["results"] == f"results-{name}", path
        command = f"snakemake --cores all --configfile .test/{name}/config.yaml"
        prepare = path.parent / "prepare.py"
        if prepare.exists():
            command = f"python .test/{name}/prepare.py && {command}"
            assert f".test/{name}/" in config["competition"]["dir"], path
            assert command in prepare.read_text(), prepare
        else:
            assert config["competition"].get("dir") is None, path
        assert f"#   {command}\n" in text, path
        if name in DEMOS:
            assert f"--configfile .test/{name}/config.yaml" in readme, name
        else:
            assert any(f'"{name}"' in test for test in workflow_tests), f"no test runs {name}"


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


DELIBERATE = {
    "dedup.near": "the 8x8 digits are too small for near-duplicate search",
    "models.*.drop_rate": "the experiment's head dropout",
    "models.*.augment": "the experiment's augmentation",
    "models.regnetx_002.lr": "RegNet's small stem learns faster at a higher rate",
    "ensemble.*.params": "each blend's and stacker's own options",
}
"""Where config.yaml deliberately sets another value than the schema's default (each has a
comment there saying why); every other value it restates is the default."""


def _set_values(value, schema: dict, path: tuple = ()):
    """(key path, value, schema default) for every value config.yaml sets where the schema
    has a default; sections and collections (whose entries its additionalProperties
    describe) are walked into, not compared whole."""
    described = "properties" in schema or isinstance(schema.get("additionalProperties"), dict)
    if isinstance(value, dict) and described:
        for key, below in value.items():
            sub = (schema.get("properties") or {}).get(key, schema.get("additionalProperties"))
            if isinstance(sub, dict):
                yield from _set_values(below, sub, (*path, str(key)))
    elif "default" in schema:
        yield ".".join(path), value, schema["default"]


def test_config_yaml_restates_the_schemas_defaults_or_deviates_on_purpose():
    """One source of defaults: config.yaml is the commented example, so a value it restates
    must be the schema's, and a deliberate deviation is listed here (and must deviate)."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    deviating = {path: (value, default)
                 for path, value, default in _set_values(config, SCHEMA)
                 if value != default}
    unexplained = {p: v for p, v in deviating.items()
                   if not any(fnmatch.fnmatch(p, d) for d in DELIBERATE)}
    assert not unexplained, f"config.yaml differs from the schema's defaults: {unexplained}"
    unused = [d for d in DELIBERATE if not any(fnmatch.fnmatch(p, d) for p in deviating)]
    assert not unused, f"listed as deliberate but equal to the default: {unused}"


def test_settings_dataclasses_take_the_schemas_defaults_and_keys():
    """The settings a job builds carry the schema's defaults (they are taken from it), and
    each kind of model takes exactly the keys the schema gives that kind."""
    from dataclasses import MISSING, fields

    from podium.data.ingest import CompetitionLayout, ExternalSource
    from podium.data.neardup import NearDuplicateSettings
    from podium.metrics import DEFAULT_MULTILABEL_RULE
    from podium.preprocess.transforms import PreprocessSettings
    from podium.schema import model_keys, schema_default, task_keys
    from podium.tasks.classify.fit import TrainSettings
    from podium.tasks.segment.fit import SegmentSettings
    from podium.tasks.segment.options import SegmentOptions
    from podium.tasks.segment.rle import DEFAULT_FORMAT

    for cls, section in ((TrainSettings, ("models",)), (SegmentSettings, ("models",)),
                         (PreprocessSettings, ("preprocess",)),
                         (NearDuplicateSettings, ("dedup",)),
                         (CompetitionLayout, ("competition",)),
                         (ExternalSource, ("competition", "external"))):
        for field in fields(cls):
            if field.name == "options":  # the task plug-ins' own keys: below
                continue
            if field.default is not MISSING:
                default = field.default
            elif field.default_factory is not MISSING:
                default = field.default_factory()
            else:
                continue
            wanted = schema_default(*section, field.name)
            assert default == (tuple(wanted) if isinstance(default, tuple) else wanted), (
                cls.__name__, field.name)
    assert {f.name for f in fields(TrainSettings)} == set(model_keys("classification"))
    segment = {"backbone" if f.name == "encoder" else f.name for f in fields(SegmentSettings)}
    assert segment == set(model_keys("segmentation"))
    assert schema_default("competition", "rle_format") == DEFAULT_FORMAT
    assert schema_default("competition", "multilabel_rule") == DEFAULT_MULTILABEL_RULE
    # the segment plug-in's typed view holds exactly the keys the schema gives it (x-task)
    assert [f.name for f in fields(SegmentOptions)] == list(task_keys("segmentation"))


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
@pytest.mark.parametrize("demo", [None, ".test/shapes/config.yaml"])
def test_snakemake_lint_is_clean(profile, demo):
    """Both profiles, for the classification DAG and the segmentation demo's."""
    extra = ["--configfile", demo] if demo else []
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--lint", "--workflow-profile",
                           profile, *extra], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=local_env())
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
