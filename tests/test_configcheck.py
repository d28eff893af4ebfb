"""The config check: every bad config is refused when the Snakefile is parsed (and by
``podium check``), naming the file, line and key path, the bad value and what to use."""

from __future__ import annotations

import copy
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO, Workflow

from podium import cli, configcheck
from podium.configcheck import check_config, check_names, validate_config
from podium.configfiles import load_config_file, load_configs, merge_configs
from podium.errors import PodiumInputError
from podium.schema import prune_model_keys
from podium.stage import registered_stages, task_stage

DEFAULT = yaml.safe_load((REPO / "config.yaml").read_text())
SHAPES = REPO / ".test/shapes/config.yaml"
TEST_CONFIGS = sorted(REPO.glob(".test/*/config.yaml"))


def config_with(update: dict, base: dict | None = None) -> dict:
    return merge_configs(copy.deepcopy(base or DEFAULT), copy.deepcopy(update))


def refused(config: dict, files: list[Path] = ()) -> str:
    """The message check_config refuses ``config`` with."""
    with pytest.raises(PodiumInputError) as info:
        check_config(config, files)
    return str(info.value)


def shapes_config(update: dict | None = None) -> dict:
    """The segmentation demo as the Snakefile layers it over config.yaml."""
    config, _ = load_configs([SHAPES])
    return config_with(update or {}, config)


# ------------------------------------------------------------------ registry names


@pytest.mark.parametrize(("update", "expected"), [
    ({"backbone": "resnet10tt"},
     ["models.resnet10t.backbone", "'resnet10tt'", "timm model", "resnet10t"]),
    ({"loss": "focall"}, ["models.resnet10t.loss", "'focall'", "Did you mean focal"]),
    ({"loss": "mse"}, ["models.resnet10t.loss", "'mse'", "supports tasks", "'multiclass'"]),
    ({"loss": [{"name": "focal", "params": {"gama": 2}}]},
     ["models.resnet10t.loss[0].params", "'gama'", "Did you mean gamma"]),
    ({"loss": [{"name": "focal", "weight": -1}]}, ["models.resnet10t.loss[0].weight"]),
    ({"sampler": "class_balance"},
     ["models.resnet10t.sampler", "'class_balance'", "class_balanced"]),
    ({"sampler": {"name": "class_balanced", "params": {"alpah": 0.5}}},
     ["models.resnet10t.sampler", "'alpah'", "alpha"]),
    ({"sampler": {"nam": "class_balanced"}}, ["models.resnet10t.sampler", "name, params"]),
    ({"tta": ["identity", "hflipp"]}, ["models.resnet10t.tta", "'hflipp'", "hflip"]),
    ({"tta": [{"transform": {"__class_fullname__": "Compose",
                             "transforms": [{"__class_fullname__": "HorizontalFlipp"}]}}]},
     ["models.resnet10t.tta[0]", "HorizontalFlipp", "HorizontalFlip"]),
    ({"augment": {"transform": {"__class_fullname__": "Compose",
                                "transforms": [{"__class_fullname__": "Afine", "p": 0.5}]}}},
     ["models.resnet10t.augment", "'Afine'", "Affine"]),
    ({"augment": {"transform": {"__class_fullname__": "Compose",
                                "transforms": [{"__class_fullname__": "Affine",
                                                "rotate": "lots"}]}}},
     ["models.resnet10t.augment", "albumentations cannot build", "rotate"]),
])
def test_bad_model_names_are_refused_at_config_check(update, expected):
    message = refused(config_with({"models": {"resnet10t": update}}))
    for text in expected:
        assert text in message, message


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("pooling", "gemm", "Did you mean gem"),
    ("optimizer", "adam", "Did you mean adamw"),
    ("schedule", "cosin", "Did you mean cosine"),
    ("tta_merge", "geo_mean", "Did you mean geomean"),
    ("precision", "bf32", "bf16"),
])
def test_bad_enum_names_say_the_close_value(key, value, expected):
    message = refused(config_with({"models": {"resnet10t": {key: value}}}))
    assert f"config key models.resnet10t.{key}: {value!r} is not one of" in message
    assert expected in message
    assert "Failed validating" not in message and "{'type'" not in message


def test_bad_ensemble_and_postprocess_names_are_refused():
    message = refused(config_with({
        "ensemble": {"blends": {"mean": {"method": "meen"},
                                "hill_climb": {"method": "hill_climb",
                                               "params": {"max_round": 3}}},
                     "stackers": {"lightgbm": {"library": "lightgbn"}}},
        "postprocess": {"f1": {"method": "threshold_f1"}},
    }))
    assert "ensemble.blends.mean.method: 'meen'" in message and "Did you mean mean" in message
    assert "ensemble.stackers.lightgbm.library: 'lightgbn'" in message
    assert "lightgbm" in message
    assert "postprocess.f1.method: 'threshold_f1'" in message and "thresholds_f1" in message
    message = refused(config_with({"ensemble": {"blends": {"hill_climb": {
        "method": "hill_climb", "params": {"max_round": 3}}}}}))
    assert "ensemble.blends.hill_climb.params" in message and "max_rounds" in message
    message = refused(config_with({"postprocess": {"f1": {
        "method": "thresholds_f1", "params": {"treshold": 0.3}}}}))
    assert "config key postprocess.f1: bad params" in message and "treshold" in message


@pytest.mark.parametrize(("update", "expected"), [
    ({"backbone": "resnet18dd"}, ["models.unet_resnet18d.backbone", "'resnet18dd'",
                                  "resnet18d"]),
    ({"arch": "unett"}, ["models.unet_resnet18d.arch", "'unett'", "Did you mean unet"]),
    ({"loss": "dise"}, ["models.unet_resnet18d.loss", "'dise'", "dice"]),
    ({"loss": "cross_entropy"}, ["models.unet_resnet18d.loss", "'cross_entropy'", "bce"]),
    ({"tta": ["identity", "scale2"]}, ["models.unet_resnet18d.tta", "'scale2'", "D4 view"]),
    ({"tta": ["identity", {"transform": {"__class_fullname__": "Compose", "transforms": []}}]},
     ["models.unet_resnet18d.tta[1]", "cannot be turned back on masks"]),
])
def test_bad_segmentation_names_are_refused(update, expected):
    config = shapes_config()
    config["models"] = {"unet_resnet18d": {**config["models"]["unet"], **update}}
    message = refused(config)
    for text in expected:
        assert text in message, message


def test_segmentation_takes_tta_scales():
    config = shapes_config()
    model = next(n for n, e in config["models"].items() if e.get("arch"))
    config["models"] = {model: {**config["models"][model], "tta": ["flips"],
                                "tta_scales": [1.0, 1.25]}}
    check_config(config)


def test_plain_combination_checks():
    message = refused(config_with({
        "competition": {"encoding": "latin-2x"},
        "adversarial": {"weight_training": True},
        "models": {"resnet10t": {"sampler": "class_balanced"}},
    }))
    assert "competition.encoding" in message and "'latin-2x'" in message
    assert "models.resnet10t.sampler: class_balanced cannot be combined" in message
    config = shapes_config()
    model = next(n for n, e in config["models"].items() if e.get("arch"))
    config["models"][model]["crop"] = config["preprocess"]["size"] * 2
    assert f"models.{model}.crop" in refused(config)


def test_blends_stackers_and_post_processors_the_task_does_not_offer_are_refused():
    """The task's stage says what applies (a segmentation competition blends by mean, has no
    stackers, post-processes masks); the rest is refused by key, never left out unsaid."""
    message = refused(config_with({
        "ensemble": {"blends": {"geo": {"method": "geomean"}},
                     "stackers": {"lgb": {"library": "lightgbm"}}},
        "postprocess": {"f1": {"method": "thresholds_f1"},
                        "objects": {"method": "instances"}},
        "pseudo_label": {"enabled": True},
    }, shapes_config()))
    assert "ensemble.blends.geo.method: a segmentation competition blends by mean, not " \
           "'geomean'" in message
    assert "ensemble.stackers.lgb: a segmentation competition has no stackers" in message
    assert "postprocess.f1.method: a segmentation competition post-processes by masks, " \
           "instances, not 'thresholds_f1'" in message
    assert "postprocess.objects.method: instances splits objects of an instance " \
           "competition; set competition.instances: true" in message
    assert "pseudo_label.enabled: a segmentation competition has no pseudo-labelling" in message
    # and the other way round: mask post-processing is no classification post-processor
    message = refused(config_with({"postprocess": {"m": {"method": "masks"}}}))
    assert "config key postprocess.m" in message and "'masks'" in message


def test_a_demo_or_resize_the_task_does_not_offer_is_refused():
    message = refused(config_with({"competition": {"embedded": "digits"},
                                   "preprocess": {"resize": "pad"}}, shapes_config()))
    assert "competition.embedded: a segmentation competition's demos are shapes, not " \
           "'digits'" in message
    assert "preprocess.resize: segmentation needs stretch" in message and "'pad'" in message
    message = refused(config_with({"competition": {"rle_format": "siim", "mask_order": "C"}},
                                  shapes_config()))
    assert "RLE format 'siim' numbers pixels in order F only" in message


def test_another_tasks_competition_key_is_refused_at_config_check():
    """A segmentation key set for a classification competition would be ignored; the
    shipped config.yaml's restated defaults of those keys are not refused."""
    message = refused(config_with({"competition": {"instances": True, "class_column": "c"}}))
    assert ("config key competition.instances applies to segmentation competitions, not to "
            "task 'multiclass'; remove it.") in message
    assert "config key competition.class_column applies to segmentation" in message
    check_config(config_with({"competition": {"instances": False, "mask_order": "F"}}))


@pytest.mark.parametrize(("task", "metric", "fitting"), [
    ("regression", "accuracy", "mae, rmse"), ("segmentation", "iou", "dice"),
    ("multiclass", "f1_samples", "accuracy"),
])
def test_a_metric_that_does_not_fit_the_task_is_refused_at_config_check(task, metric, fitting):
    base = shapes_config() if task == "segmentation" else DEFAULT
    message = refused(config_with({"competition": {"task": task, "metric": metric}}, base))
    assert f"competition.metric: {metric!r} does not score {task}" in message
    assert fitting in message


def test_every_problem_is_reported_at_once_with_file_and_line(tmp_path):
    own = tmp_path / "my.yaml"
    own.write_text("models:\n  resnet10t:\n    backbone: resnet10tt\n    loss: focall\n"
                   "    tta: [hflipp]\n")
    config, files = load_configs([own])
    message = refused(config, files)
    assert "3 problem(s)" in message
    assert f"{own} line 3: config key models.resnet10t.backbone" in message
    assert f"{own} line 4: config key models.resnet10t.loss" in message
    assert f"{own} line 5: config key models.resnet10t.tta" in message


def test_the_default_and_demo_configs_pass():
    check_config(copy.deepcopy(DEFAULT))
    check_config(shapes_config())
    assert len(TEST_CONFIGS) > 10
    for path in TEST_CONFIGS:  # the demos and every other .test config
        config, files = load_configs([path])
        check_config(config, files)


def test_names_that_passed_are_not_checked_again(tmp_path, monkeypatch):
    config = validate_config(copy.deepcopy(DEFAULT))
    check_names(config, cache_dir=tmp_path)
    remembered = {path.name for path in tmp_path.iterdir()}
    assert remembered  # one file per look-up that passed

    def fail(*args):
        raise AssertionError("checked again")

    monkeypatch.setattr(configcheck, "_run_check", fail)
    check_names(config, cache_dir=tmp_path)  # the same names: remembered
    changed = config_with({"models": {"resnet10t": {"lr": 0.1}}}, config)
    check_names(changed, cache_dir=tmp_path)  # lr is no name: still remembered
    # a new model whose backbone and settings were all looked up before: nothing to look up
    copied = config_with({"models": {"second": config["models"]["resnet10t"]}}, config)
    check_names(copied, cache_dir=tmp_path)
    assert {path.name for path in tmp_path.iterdir()} == remembered
    renamed = config_with({"models": {"resnet10t": {"backbone": "resnet18"}}}, config)
    with pytest.raises(AssertionError, match="checked again"):
        check_names(renamed, cache_dir=tmp_path)


def test_a_name_that_failed_is_looked_up_again_and_the_rest_is_remembered(tmp_path,
                                                                          monkeypatch):
    config = validate_config(copy.deepcopy(DEFAULT))
    bad = config_with({"models": {"resnet10t": {"backbone": "resnet10"}}}, config)
    with pytest.raises(PodiumInputError, match="models.resnet10t.backbone"):
        check_names(bad, cache_dir=tmp_path)
    looked_up = []
    real = configcheck._run_check
    monkeypatch.setattr(configcheck, "_run_check",
                        lambda kind, key, value: looked_up.append(key) or real(kind, key, value))
    with pytest.raises(PodiumInputError, match="models.resnet10t.backbone"):
        check_names(bad, cache_dir=tmp_path)
    assert looked_up == ["models.resnet10t.backbone"]


def test_the_task_stage_declares_its_model_look_ups(tmp_path, monkeypatch):
    """A model's registry names are looked up through the checks its task's stage declares
    (``TaskStage.model_checks``): each gets the values of its keys and the first key's path,
    its refusal is reported by that key, and a change of its module's code looks it up
    again. So a new task brings its own look-ups and this module does not change."""
    import dataclasses

    import podium.train.tta
    from podium.stage import register_stage

    config = validate_config(copy.deepcopy(DEFAULT))
    calls = []

    def probe(tta, task, key):
        calls.append((tta, task, key))
        if "vflip" in tta:
            raise PodiumInputError(f"config key {key}: no vflip here.")

    monkeypatch.setattr(podium.train.tta, "probe_check", probe, raising=False)
    stage = task_stage("multiclass")
    declared = dataclasses.replace(
        stage, model_checks=(("podium.train.tta:probe_check", ("tta", "task")),))
    register_stage(("multiclass",), declared)
    try:
        model_kinds = [kind for kind, keys, _ in configcheck.name_plan(config)
                       if keys[0] == "models" and kind != "augment"]
        assert model_kinds == ["podium.train.tta:probe_check"] * len(config["models"])
        check_names(config, cache_dir=tmp_path / "memory")
        assert sorted(calls) == sorted(
            (entry["tta"], "multiclass", f"models.{name}.tta")
            for name, entry in config["models"].items())
        check_names(config, cache_dir=tmp_path / "memory")  # remembered
        assert len(calls) == len(config["models"])
        real_hash = configcheck.module_hash
        monkeypatch.setattr(configcheck, "module_hash", lambda name, cache=None: (
            "edited" if name == "podium.train.tta" else real_hash(name, cache=cache)))
        check_names(config, cache_dir=tmp_path / "memory")  # only its module changed
        assert len(calls) == 2 * len(config["models"])
        name = sorted(config["models"])[0]
        bad = config_with({"models": {name: {"tta": ["identity", "vflip"]}}}, config)
        with pytest.raises(PodiumInputError, match=f"models.{name}.tta: no vflip here"):
            check_names(bad)
    finally:
        register_stage(("multiclass",), stage)


def test_a_missing_library_skips_its_names_with_a_note(monkeypatch):
    def no_torch(kind, key, value):
        raise ModuleNotFoundError("No module named 'torch'", name="torch")

    monkeypatch.setattr(configcheck, "_run_check", no_torch)
    notes = []
    check_names(validate_config(copy.deepcopy(DEFAULT)), note=notes.append)
    assert notes and "torch" in notes[0]


def test_every_task_names_the_kind_of_model_it_trains():
    """competition.task's x-model-kinds (podium.schema.model_kind) lists every task once,
    and names only kinds whose keys the schema marks, or classification, whose keys are the
    unmarked ones and the classification-marked ones."""
    from podium.schema import model_keys, model_kind

    schema = configcheck.load_schema()
    task = schema["properties"]["competition"]["properties"]["task"]
    kinds = task["x-model-kinds"]
    assert set(kinds) == set(task["enum"]) == set(registered_stages())
    marked = {node.get("x-model") for node in
              schema["properties"]["models"]["additionalProperties"]["properties"].values()}
    assert set(kinds.values()) == marked - {None}
    assert model_kind("segmentation") == "segmentation" and model_kind("binary") == "classification"
    assert "arch" in model_keys(model_kind("segmentation"))
    assert "pooling" in model_keys(model_kind("ordinal"))


def test_schema_enums_match_the_registries():
    """The schema's enums are the names the registries accept, so config check and jobs
    agree."""
    from podium.data.targets import registered_tasks
    from podium.ensemble.blend import BLENDS
    from podium.ensemble.postprocess import POSTPROCESSORS
    from podium.ensemble.stack import STACKERS
    from podium.tasks.classify.models import POOLINGS
    from podium.tasks.segment.models import ARCHS
    from podium.train.optim import OPTIMIZERS, SCHEDULES
    from podium.train.tta import MERGES

    schema = configcheck.load_schema()
    model = schema["properties"]["models"]["additionalProperties"]["properties"]
    ensemble = schema["properties"]["ensemble"]["properties"]
    assert set(model["pooling"]["enum"]) == set(POOLINGS)
    assert set(model["optimizer"]["enum"]) == set(OPTIMIZERS)
    assert set(model["schedule"]["enum"]) == set(SCHEDULES)
    assert set(model["tta_merge"]["enum"]) == set(MERGES)
    assert set(model["arch"]["enum"]) - {None} == set(ARCHS)
    method = ensemble["blends"]["additionalProperties"]["properties"]["method"]
    assert set(method["enum"]) == set(BLENDS)
    library = ensemble["stackers"]["additionalProperties"]["properties"]["library"]
    assert set(library["enum"]) == set(STACKERS)
    post = schema["properties"]["postprocess"]["additionalProperties"]["properties"]["method"]
    task_posts = {m for task in registered_stages() for m in (task_stage(task).post_methods or ())}
    assert set(post["enum"]) == set(POSTPROCESSORS) | task_posts
    competition = schema["properties"]["competition"]["properties"]
    # a plug-in registers its task's targets and stage; the schema names the same tasks
    assert set(competition["task"]["enum"]) == set(registered_tasks()) == set(registered_stages())


# ------------------------------------------------------------------------- the schema


def test_unknown_key_names_path_line_and_nearest_key(tmp_path):
    own = tmp_path / "my.yaml"
    own.write_text("folds:\n  n_fold: 3\nmodels:\n  resnet10t:\n    learning_rate: 0.1\n")
    config, files = load_configs([own])
    message = refused(config, files)
    assert f"{own} line 2: config key folds.n_fold: unknown key. Did you mean n_folds?" in message
    assert f"{own} line 5: config key models.resnet10t.learning_rate: unknown key" in message
    assert "Failed validating" not in message and "additionalProperties" not in message


@pytest.mark.parametrize(("update", "expected"), [
    ({"folds": {"n_folds": "five"}},
     "config key folds.n_folds: is 'five', a string; expected an integer"),
    ({"folds": {"n_folds": 1}}, "config key folds.n_folds: 1 must be >= 2"),
    ({"preprocess": {"clahe": "yes"}}, "config key preprocess.clahe: is 'yes', a string; "
                                       "expected true or false"),
    ({"competition": {"task": "regresion"}},
     "config key competition.task: 'regresion' is not one of binary, multiclass"),
    ({"competition": {"train_images": "train/x.png"}},
     "config key competition.train_images: 'train/x.png' does not match"),
    ({"competition": {"embedded": None}},
     "config key competition.dir: is unset (null); expected a string (required when "
     "competition.embedded is null)"),
    ({"competition": {"embedded": "shapes"}},
     "config key competition.task: 'multiclass' must be 'segmentation' (required when "
     "competition.embedded is 'shapes')"),
    ({"models": {"resnet10t": {"tta": []}}}, "config key models.resnet10t.tta: needs at "
                                             "least 1 item(s), has 0"),
])
def test_schema_errors_are_one_line_each(update, expected):
    message = refused(config_with(update))
    assert expected in message, message
    assert "Failed validating" not in message and "On instance" not in message


def test_a_model_key_of_the_other_kind_is_refused_with_file_and_line(tmp_path):
    """Each model's keys by the competition's task: a segmentation key on a classification
    model and a classification key on a segmentation model are refused by key path (not
    dropped), whatever their value; a segmentation model needs an arch."""
    own = tmp_path / "my.yaml"
    own.write_text("models:\n  resnet:\n    backbone: resnet10t\n    crop: 16\n"
                   "    arch: unett\n")
    config, files = load_configs([own])
    message = refused(config, files)
    assert "2 problem(s)" in message, message  # arch's bad value is not reported again
    assert (f"{own} line 4: config key models.resnet.crop: applies to segmentation models "
            "only (competition.task is multiclass)") in message
    assert f"{own} line 5: config key models.resnet.arch: applies to segmentation" in message

    seg = tmp_path / "seg.yaml"
    seg.write_text("models:\n  unet:\n    pooling: gem\n    drop_rate: 0.2\n"
                   "  plain:\n    backbone: resnet10t\n")
    config, files = load_configs([SHAPES, seg])
    message = refused(config, files)
    assert "3 problem(s)" in message, message
    assert (f"{seg} line 3: config key models.unet.pooling: does not apply to segmentation "
            "models (competition.task is segmentation)") in message
    assert f"{seg} line 4: config key models.unet.drop_rate: does not apply" in message
    assert f"{seg} line 5: config key models.plain.arch: missing" in message
    # a misspelt task is what is reported, not every model key
    message = refused(shapes_config({"competition": {"task": "segmentaton"}}))
    assert "Did you mean segmentation" in message and "models." not in message, message


def test_each_validated_model_holds_its_own_kinds_keys():
    """The defaults of the other kind are not filled in (params hold what the job uses)."""
    from podium.schema import model_keys

    default = validate_config(copy.deepcopy(DEFAULT))
    assert set(default["models"]["resnet10t"]) == set(model_keys("classification"))
    assert "arch" not in default["models"]["regnetx_002"]
    shapes = validate_config(shapes_config())
    assert set(shapes["models"]["unet"]) == set(model_keys("segmentation"))


def test_a_collection_a_user_file_lists_is_not_located_in_config_yaml(tmp_path):
    """A key of a replaced collection lives in the user's file or nowhere, never in
    config.yaml's entry of the same name; other keys are still found in config.yaml."""
    own = tmp_path / "my.yaml"
    own.write_text("models:\n  resnet10t:\n    backbone: resnet10t\n")
    locate = configcheck._Locator([REPO / "config.yaml", own])
    assert locate.line(["models", "resnet10t", "backbone"]) == f"{own} line 3: "
    assert locate.line(["models", "resnet10t", "lr"]) == ""
    assert locate.line(["folds", "n_folds"]).startswith(f"{REPO / 'config.yaml'} line ")
    alone = configcheck._Locator([REPO / "config.yaml"])
    assert alone.line(["models", "resnet10t", "lr"]).startswith(f"{REPO / 'config.yaml'} line")


def test_missing_required_key_is_named():
    config = copy.deepcopy(DEFAULT)
    del config["models"]["resnet10t"]["backbone"]
    assert "config key models.resnet10t.backbone: missing" in refused(config)


@pytest.mark.parametrize("extra", [[], *([p] for p in TEST_CONFIGS)],
                         ids=["default", *(p.parent.name for p in TEST_CONFIGS)])
def test_defaults_are_filled_as_snakemake_validate_fills_them(extra):
    from snakemake.utils import validate

    config, _ = load_configs(extra)
    theirs = copy.deepcopy(config)
    validate(theirs, str(configcheck.SCHEMA_PATH))
    assert validate_config(config) == prune_model_keys(theirs)  # each model's own keys


# ----------------------------------------------------------------------- YAML files


@pytest.mark.parametrize("tag", ["!!python/object:os.system {}", "!!python/name:os.system",
                                 "!custom 3"])
def test_yaml_tags_are_refused_with_file_and_line(tmp_path, tag):
    own = tmp_path / "my.yaml"
    own.write_text(f"folds:\n  n_folds: 3\nmodels:\n  resnet10t: {tag}\n")
    with pytest.raises(PodiumInputError) as info:
        load_config_file(own)
    message = str(info.value)
    assert f"{own} line 4" in message and "YAML tag" in message
    assert "is not allowed" in message and tag.split()[0].split(":")[0] in message


def test_bad_yaml_names_its_line(tmp_path):
    own = tmp_path / "my.yaml"
    own.write_text("folds:\n\tn_folds: 3\n")
    with pytest.raises(PodiumInputError, match=rf"{own} line 2, column 1: not valid YAML"):
        load_config_file(own)


def test_podium_check_refuses_yaml_tags(tmp_path, capsys):
    own = tmp_path / "my.yaml"
    own.write_text("models:\n  resnet10t: !!python/object:os.system {}\n")
    assert cli.main(["check", str(tmp_path), "--config", str(own)]) == 1
    err = capsys.readouterr().err
    assert f"{own} line 2" in err and "YAML tag !!python/object:os.system" in err


def test_podium_run_refuses_yaml_tags_before_snakemake(tmp_path, capsys, monkeypatch):
    own = tmp_path / "my.yaml"
    own.write_text("folds: !!python/tuple [1, 2]\n")
    monkeypatch.setattr(cli.subprocess, "call", lambda *a, **k: pytest.fail("snakemake ran"))
    assert cli.main(["run", "-n", "--configfile", str(REPO / "config.yaml"), str(own)]) == 1
    assert f"{own} line 1" in capsys.readouterr().err
    assert cli._config_files(["-n", "--configfile=a.yaml", "--configfiles", "b.yaml",
                              "c.yaml", "--cores", "2"]) == ["a.yaml", "b.yaml", "c.yaml"]


# ------------------------------------------------------------------- podium check


def test_podium_check_refuses_bad_names_and_still_checks_the_folder(tmp_path, capsys):
    assert cli.main(["digits", str(tmp_path / "comp"), "--max-images", "30"]) == 0
    own = tmp_path / "my.yaml"
    own.write_text("models:\n  resnet10t:\n    backbone: resnet10tt\n")
    assert cli.main(["check", str(tmp_path / "comp"), "--config", str(own)]) == 1
    out, err = capsys.readouterr()
    assert f"{own} line 3: config key models.resnet10t.backbone" in err
    assert "resnet10t" in err and "images OK" in out


def test_podium_check_refuses_schema_errors(tmp_path, capsys):
    own = tmp_path / "my.yaml"
    own.write_text("folds:\n  n_folds: five\n")
    assert cli.main(["check", str(tmp_path), "--config", str(own)]) == 1
    assert f"{own} line 2: config key folds.n_folds: is 'five'" in capsys.readouterr().err


# ------------------------------------------------------------------ the dry run


@pytest.mark.slow
def test_dry_run_refuses_bad_names_before_any_job(tmp_path):
    flow = Workflow(tmp_path)
    flow.config["models"]["resnet10t"].update(backbone="resnet10tt", loss="focall")
    flow.write_config()
    started = time.perf_counter()
    proc = flow.snakemake("-n", check=False)
    assert proc.returncode != 0
    assert "config key models.resnet10t.backbone: unknown timm model 'resnet10tt'" in proc.output
    assert "config key models.resnet10t.loss: unknown loss 'focall'" in proc.output
    assert "config.yaml line" in proc.output
    assert not flow.results.exists()
    assert time.perf_counter() - started < 120


@pytest.mark.slow
def test_dry_run_refuses_unknown_keys_readably(tmp_path):
    flow = Workflow(tmp_path)
    own = tmp_path / "my.yaml"
    own.write_text("models:\n  resnet10t:\n    backbone: resnet10t\n    lrr: 0.1\n")
    proc = flow.snakemake("-n", "--configfile", str(own), check=False)
    assert proc.returncode != 0
    assert f"{own} line 4: config key models.resnet10t.lrr: unknown key. Did you mean lr?" \
        in proc.output
    assert "Failed validating" not in proc.output


def test_snakefile_checks_the_config_with_podium():
    text = (REPO / "Snakefile").read_text()
    assert "snakemake_check(workflow, config)" in text
    assert "snakemake.utils import min_version, validate" not in text


def test_config_check_runs_without_torch_imported():
    """Validating the schema imports nothing heavy (the names are remembered once checked)."""
    code = ("import copy, sys, yaml; from podium.configcheck import validate_config; "
            f"validate_config(yaml.safe_load(open({str(REPO / 'config.yaml')!r}))); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO,
                   env={"PYTHONPATH": str(REPO / "src")})
