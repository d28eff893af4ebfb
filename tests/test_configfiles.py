"""How config files combine: a user's file replaces the collections it lists (models, blends,
stackers, post-processors) instead of merging into config.yaml's; ``podium check`` and the
Snakefile layer them alike."""

from __future__ import annotations

import yaml
from conftest import REPO, Workflow

from podium import cli
from podium.configcheck import check_config
from podium.configfiles import COLLECTIONS, layer_configs, load_configs

SHIPPED = yaml.safe_load((REPO / "config.yaml").read_text())
ONE_MODEL = {"folds": {"n_folds": 3},
             "models": {"small": {"backbone": "resnet10t", "epochs": 1}},
             "ensemble": {"stackers": {"lgb": {"library": "lightgbm"}}}}


def test_a_listed_collection_replaces_the_shipped_one_and_the_rest_merges():
    config = layer_configs([SHIPPED], [ONE_MODEL])
    assert config["models"] == ONE_MODEL["models"]
    assert config["ensemble"]["stackers"] == ONE_MODEL["ensemble"]["stackers"]
    assert config["ensemble"]["blends"] == SHIPPED["ensemble"]["blends"]  # not listed: kept
    assert config["folds"] == {**SHIPPED["folds"], "n_folds": 3}  # sections merge by key
    assert config["preprocess"] == SHIPPED["preprocess"]
    assert {("models",), ("ensemble", "blends"), ("ensemble", "stackers"),
            ("postprocess",)} == set(COLLECTIONS)


def test_the_users_files_merge_over_each_other_and_null_drops_an_entry():
    """A later file changes one key of a model an earlier file lists, or drops it."""
    first = {"models": {"a": {"backbone": "resnet10t", "lr": 0.01},
                        "b": {"backbone": "resnet18"}},
             "postprocess": {"f1": {"method": "thresholds_f1"}}}
    second = {"models": {"a": {"epochs": 3}, "b": None}, "postprocess": None}
    config = layer_configs([SHIPPED], [first, second])
    assert config["models"] == {"a": {"backbone": "resnet10t", "lr": 0.01, "epochs": 3}}
    assert config["postprocess"] == {}


def test_command_line_values_change_keys_and_are_read_as_yaml():
    """``--config`` merges into what is in force, never replaces; Snakemake reads the values
    inside a mapping as strings, podium as YAML would read them in a file."""
    cli_values = {"models": {"resnet10t": {"lr": "0.01", "pretrained": "true",
                                           "clip_grad_norm": "null", "backbone": "resnet18"},
                             "regnetx_002": "null"}}
    config = layer_configs([SHIPPED], [], cli_values)
    assert list(config["models"]) == ["resnet10t"]
    model = config["models"]["resnet10t"]
    assert model["lr"] == 0.01 and model["pretrained"] is True
    assert model["clip_grad_norm"] is None and model["backbone"] == "resnet18"
    assert model["epochs"] == SHIPPED["models"]["resnet10t"]["epochs"]
    mine = layer_configs([SHIPPED], [ONE_MODEL], {"models": {"small": {"epochs": "2"}}})
    assert mine["models"] == {"small": {"backbone": "resnet10t", "epochs": 2}}


def test_load_configs_and_podium_check_see_what_snakemake_runs(tmp_path, capsys):
    own = tmp_path / "my.yaml"
    own.write_text(yaml.safe_dump(ONE_MODEL))
    config, files = load_configs([own])
    assert files == [REPO / "config.yaml", own]
    assert list(config["models"]) == ["small"]
    assert list(config["ensemble"]["stackers"]) == ["lgb"]
    # the segmentation demo holds its own models only: config.yaml's classification models,
    # whose keys a segmentation competition refuses, are replaced
    config, files = load_configs([REPO / ".test/shapes/config.yaml"])
    assert sorted(config["models"]) == ["fpn", "unet"]
    check_config(config, files)
    assert cli.main(["digits", str(tmp_path / "comp"), "--max-images", "30"]) == 0
    assert cli.main(["check", str(tmp_path / "comp"), "--config", str(own)]) == 0
    assert "OK, " in capsys.readouterr().out


def test_a_user_config_plans_exactly_its_model_and_stacker(tmp_path):
    """``snakemake --configfile my.yaml`` with one model and one stacker plans that model's
    folds and that stacker alone; config.yaml's blends stay (my.yaml lists none); the
    shipped default still plans its two models, three blends and three stackers, and
    ``--config`` changes or drops an entry of what is in force."""
    flow = Workflow(tmp_path)
    default = flow.planned_jobs()
    assert {rule: default[rule] for rule in ("train_model", "predict_test", "gather_model",
                                             "blend_models", "stack_models")} == {
        "train_model": 10, "predict_test": 10, "gather_model": 2, "blend_models": 3,
        "stack_models": 3}
    own = tmp_path / "my.yaml"
    own.write_text(yaml.safe_dump(ONE_MODEL))
    planned = flow.planned_jobs("--configfile", str(own))
    assert planned == {**default, "train_model": 3, "predict_test": 3, "gather_model": 1,
                       "stack_models": 1}
    tweaked = flow.planned_jobs("--config", "models={resnet10t: {lr: 0.01}, regnetx_002: null}")
    assert tweaked == {**default, "train_model": 5, "predict_test": 5, "gather_model": 1}
