"""podium.settings: the config in one spelling, so params compare by content."""

from __future__ import annotations

import copy

import pytest
import yaml
from conftest import REPO, respelled_yaml, reversed_keys
from snakemake.common.configfile import load_configfile

from podium.configcheck import validate_config
from podium.configfiles import layer_configs
from podium.settings import canonical, canonicalise

SCHEMA_PATH = REPO / "workflow/schemas/config.schema.yaml"
SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())

NUMBERS = {
    "type": "object",
    "properties": {
        "lr": {"type": "number"},
        "clip": {"type": ["number", "null"]},
        "epochs": {"type": "integer"},
        "name": {"type": "string"},
        "classes": {"type": "array", "items": {"type": ["string", "integer"]}},
        "scales": {"type": "array", "items": {"type": "number"}},
        "params": {"type": "object"},
        "ref": {"$ref": "#/$defs/rate"},
    },
    "$defs": {"rate": {"type": "number"}},
}


def test_reordered_nested_mappings_give_the_same_repr():
    a = {"b": {"y": 1, "x": [{"q": 1, "p": 2}]}, "a": {"d": None, "c": "s"}}
    b = {"a": {"c": "s", "d": None}, "b": {"x": [{"p": 2, "q": 1}], "y": 1}}
    assert repr(a) != repr(b)
    assert repr(canonical(a)) == repr(canonical(b))
    assert list(canonical(a)) == ["a", "b"]
    assert list(canonical(a)["b"]["x"][0]) == ["p", "q"]


def test_lists_keep_their_order():
    value = {"tta": ["vflip", "identity", "hflip"], "steps": [{"b": 1}, {"a": 2}]}
    assert canonical(value) == value
    assert canonical(value)["tta"] == ["vflip", "identity", "hflip"]


@pytest.mark.parametrize("spelling", ["1e-3", "1E-3", "1.0e-3", "0.1e-2", "1e-03", 0.001,
                                      1.0e-3])
def test_exponent_spellings_are_one_number_where_the_schema_says_number(spelling):
    out = canonical({"lr": spelling, "clip": spelling, "ref": spelling, "scales": [spelling]},
                    NUMBERS)
    assert out == {"clip": 0.001, "lr": 0.001, "ref": 0.001, "scales": [0.001]}
    assert all(isinstance(v, float) for v in (out["lr"], out["clip"], out["ref"]))


def test_pyyaml_reads_exponents_without_a_dot_as_strings_and_they_are_canonicalised():
    loaded = yaml.safe_load("a: 1e-3\nb: 0.001\nc: 1.0e-3\nd: 1.5e3\n")
    assert loaded == {"a": "1e-3", "b": 0.001, "c": 0.001, "d": "1.5e3"}  # YAML 1.1
    out = canonical({"lr": loaded["a"], "params": loaded}, NUMBERS)
    assert out == {"lr": 0.001, "params": {"a": 0.001, "b": 0.001, "c": 0.001, "d": 1500.0}}


def test_one_number_form_per_schema_type():
    out = canonical({"lr": 1, "epochs": 15.0, "clip": -0.0, "scales": [1, 2.0]}, NUMBERS)
    assert out == {"clip": 0.0, "epochs": 15, "lr": 1.0, "scales": [1.0, 2.0]}
    assert repr(out) == "{'clip': 0.0, 'epochs': 15, 'lr': 1.0, 'scales': [1.0, 2.0]}"
    assert canonical({"epochs": "1e2"}, NUMBERS) == {"epochs": 100}
    # a non-integral integer stays as given, for validation to reject
    assert canonical({"epochs": 1.5}, NUMBERS) == {"epochs": 1.5}


def test_strings_stay_strings_where_the_schema_allows_a_string():
    out = canonical({"name": "1e3", "classes": ["1e3", 3]}, NUMBERS)
    assert out == {"classes": ["1e3", 3], "name": "1e3"}


def test_free_form_mappings_keep_ints_and_floats_and_other_strings():
    params = {"n_estimators": 10, "learning_rate": 0.05, "subsample": 1.0, "kind": "gbdt",
              "quoted": "0.5", "flag": True, "none": None}
    assert canonical({"params": params}, NUMBERS) == {"params": params}
    assert canonical({"params": {"flag": True}}, NUMBERS)["params"]["flag"] is True


def test_not_numbers_are_left_for_validation_to_reject():
    out = canonical({"lr": "fast", "epochs": "five", "clip": "0.5"}, NUMBERS)
    assert out == {"clip": "0.5", "epochs": "five", "lr": "fast"}


def test_idempotent_and_does_not_mutate():
    value = {"b": {"lr": "1e-3"}, "a": [3, 1]}
    before = copy.deepcopy(value)
    once = canonical(value)
    assert canonical(once) == once and repr(canonical(once)) == repr(once)
    assert value == before and list(value) == ["b", "a"]


def test_canonicalise_replaces_in_place():
    config = {"models": {"m": {"lr": "3e-3", "backbone": "x"}}, "competition": {}}
    same = config
    canonicalise(config, SCHEMA_PATH)
    assert same is config
    assert list(config) == ["competition", "models"]
    assert config["models"]["m"] == {"backbone": "x", "lr": 0.003}


def _as_the_snakefile_reads(texts: list[str], tmp_path) -> dict:
    """Config files layered (the first is config.yaml), canonicalised, validated (defaults)
    and canonicalised, as the Snakefile does."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    loaded = []
    for i, text in enumerate(texts):
        path = tmp_path / f"c{i}.yaml"
        path.write_text(text)
        loaded.append(load_configfile(str(path)))
    config = layer_configs(loaded[:1], loaded[1:])
    canonicalise(config, SCHEMA)
    validate_config(config, SCHEMA)
    canonicalise(config, SCHEMA)
    return config


@pytest.mark.parametrize("demo", [None, ".test/shapes/config.yaml"])
def test_the_shipped_configs_reordered_and_respelled_read_the_same(demo, tmp_path):
    """The default config, and the segmentation demo layered over it: every mapping's keys
    reversed and every number respelled (0.003 as 3e-3, 2.0 as 2, 15 epochs as 15.0) give the
    same config, repr for repr."""
    files = [REPO / "config.yaml"] + ([REPO / demo] if demo else [])
    texts = [f.read_text() for f in files]
    respelled = [respelled_yaml(reversed_keys(yaml.safe_load(t))) for t in texts]
    assert any("e-" in t for t in respelled)
    assert respelled != texts
    plain = _as_the_snakefile_reads(texts, tmp_path / "plain")
    other = _as_the_snakefile_reads(respelled, tmp_path / "respelled")
    assert repr(plain) == repr(other)
    assert canonical(plain, SCHEMA) == plain


def test_a_number_in_exponent_notation_validates(tmp_path):
    config = _as_the_snakefile_reads(
        [(REPO / "config.yaml").read_text(),
         "models:\n  resnet10t:\n    backbone: resnet10t\n    lr: 1e-3\n"
         "    warmup_epochs: 2\n    epochs: 3.0\n"], tmp_path)
    entry = config["models"]["resnet10t"]
    assert entry["lr"] == 0.001 and entry["warmup_epochs"] == 2.0 and entry["epochs"] == 3
    assert type(entry["epochs"]) is int and type(entry["warmup_epochs"]) is float
