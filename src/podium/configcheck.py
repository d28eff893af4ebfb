"""The config check: a config is refused when the Snakefile is parsed (so ``snakemake -n``
fails at once) and by ``podium check``, never when a training job starts.

Three layers, each naming the config file, line and key at fault and what to do:

* :func:`podium.configfiles.load_config_file` reads a config as plain YAML (a tag such as
  ``!!python/object`` is refused with its file and line);
* :func:`validate_config` checks the schema and fills its defaults, as
  ``snakemake.utils.validate`` does, but reports every problem as a key path, the value, what
  was expected and the nearest valid key or value instead of jsonschema's schema dump; it
  also refuses a model key that does not apply to the competition's kind of model
  (:mod:`podium.schema`) and prunes the other kind's defaults;
* :func:`check_names` looks every registry name the config holds up with the registries' own
  functions: the look-ups the task plug-in declares for its models
  (``TaskStage.model_checks``: timm backbones and encoders, losses, samplers, poolings, TTA
  views), albumentations transforms, blends, post-processors and the CSV encoding.

The registries live in modules that import torch, timm and albumentations (seconds), so each
look-up that passed is remembered under ``.snakemake/podium/`` keyed by exactly what was
looked up, the library versions and podium's code: a dry run after a change of ``lr``, or
after adding a model whose backbone and settings were seen before, imports nothing; one
after a change of a backbone looks that backbone up again.
"""

from __future__ import annotations

import codecs
import copy
import hashlib
import importlib
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from podium.codehash import module_hash
from podium.configfiles import COLLECTIONS, snakemake_config_files, value_at
from podium.data.layout import CompetitionLayout
from podium.data.targets import targets_for
from podium.errors import PodiumInputError, did_you_mean
from podium.metrics import check_metric_for_task
from podium.schema import SCHEMA_PATH, load_schema, model_key_problems, prune_model_keys
from podium.stage import task_stage
from podium.tasks import plugins as _plugins  # noqa: F401  (registers every task's targets)
from podium.tasks import stages as _stages  # noqa: F401  (registers every task's stage)

MAX_REPORTED = 20
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# ------------------------------------------------------------------------------ location


class _Locator:
    """File and line of a key path in the config files, lowest precedence first, the first
    being the workflow's config.yaml (the last file that holds a key wins, as in the merge; a
    collection that a later file lists is not looked for in config.yaml, which it replaces:
    :mod:`podium.configfiles`)."""

    def __init__(self, files: Iterable[str | Path] = ()) -> None:
        self.files = [Path(f) for f in files]
        self._nodes: dict[Path, Any] = {}

    def _root(self, path: Path) -> Any:
        if path not in self._nodes:
            try:
                self._nodes[path] = yaml.compose(path.read_text(encoding="utf-8"),
                                                 Loader=_LOADER)
            except (OSError, UnicodeDecodeError, yaml.YAMLError):
                self._nodes[path] = None
        return self._nodes[path]

    def line(self, keys: Sequence[str | int]) -> str:
        """``"my.yaml line 12: "`` for the key path, or ``""`` where no file holds it."""
        files = self.files
        collection = next((c for c in COLLECTIONS if tuple(keys[:len(c)]) == c), None)
        if collection and any(self._find(f, collection) is not None for f in files[1:]):
            files = files[1:]
        for path in reversed(files):
            line = self._find(path, keys)
            if line is not None:
                return f"{path} line {line}: "
        return ""

    def _find(self, path: Path, keys: Sequence[str | int]) -> int | None:
        """The line of the key path in one file, or None."""
        node, line = self._root(path), None
        for key in keys:
            node, line = _child(node, key)
            if node is None:
                return None
        return line


def _child(node: Any, key: str | int) -> tuple[Any, int | None]:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if str(key_node.value) == str(key):
                return value_node, key_node.start_mark.line + 1
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
        return node.value[key], node.value[key].start_mark.line + 1
    return None, None


def key_path(keys: Iterable[str | int]) -> str:
    """``models.resnet.tta[1]`` from ``("models", "resnet", "tta", 1)``."""
    out = ""
    for key in keys:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out or "(top level)"


def _problems(items: list[str], what: str) -> PodiumInputError:
    shown = "\n  - ".join(items[:MAX_REPORTED])
    more = len(items) - MAX_REPORTED
    tail = f"\n  ... and {more} more" if more > 0 else ""
    return PodiumInputError(f"{what}: {len(items)} problem(s)\n  - {shown}{tail}")


# -------------------------------------------------------------------------------- schema


def _default_filling_validator(schema: dict) -> Any:
    """jsonschema's Draft 2020-12 validator that sets each property's default where the
    config lacks it, as ``snakemake.utils.validate`` does (jsonschema's FAQ recipe); defaults
    are copied, so two models never share one default list."""
    from jsonschema import Draft202012Validator, validators

    check_properties = Draft202012Validator.VALIDATORS["properties"]

    def set_defaults(validator: Any, properties: dict, instance: Any, subschema: dict):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from check_properties(validator, properties, instance, subschema)

    return validators.extend(Draft202012Validator, {"properties": set_defaults})(schema)


_TYPE_NAMES = {"string": "a string", "integer": "an integer", "number": "a number",
               "boolean": "true or false", "null": "null", "array": "a list",
               "object": "a mapping"}


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return {int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a mapping"}.get(type(value), type(value).__name__)


def _yaml(value: Any) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else (
        repr(value))


def _show(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _condition(schema: dict, error: Any) -> str:
    """' (required when competition.embedded is None)' for an error inside an if/then."""
    node, parts = schema, list(error.absolute_schema_path)
    for i, part in enumerate(parts):
        if part == "then" and isinstance(node, dict) and "if" in node:
            consts = [f"{name} is {_yaml(sub['const'])}"
                      for name, sub in node["if"].get("properties", {}).items()
                      if isinstance(sub, dict) and "const" in sub]
            prefix = key_path(list(error.absolute_path)[: _depth(parts[:i])])
            return f" (required when {' and '.join(f'{prefix}.{c}' for c in consts)})"
        node = node[part] if isinstance(node, dict | list) else None
        if node is None:
            break
    return ""


def _depth(schema_path: list) -> int:
    """How many instance keys a schema path descends (each 'properties' or
    'additionalProperties' step is one key, each 'items' one index)."""
    depth, skip = 0, False
    for part in schema_path:
        if skip:
            skip = False
            continue
        if part == "properties":
            depth, skip = depth + 1, True
        elif part in ("additionalProperties", "items"):
            depth += 1
    return depth


def _describe(error: Any, schema: dict, locate: _Locator) -> list[str]:
    keys = list(error.absolute_path)
    where = locate.line(keys)
    path = key_path(keys)
    kind, expected, value = error.validator, error.validator_value, error.instance
    description = error.schema.get("description", "") if isinstance(error.schema, dict) else ""
    about = f" ({description[:200]})" if description else ""
    when = _condition(schema, error)
    if kind == "additionalProperties" and isinstance(value, dict):
        known = list(error.schema.get("properties", {}))
        extras = [k for k in value if k not in known]
        takes = (f"{path} takes: {', '.join(known)}." if len(known) <= 12 else
                 f"Every key of {path} is described in workflow/schemas/config.schema.yaml.")
        return [f"{locate.line([*keys, k]) or where}config key {key_path([*keys, k])}: "
                f"unknown key.{did_you_mean(str(k), known, cutoff=0.5)} {takes}"
                for k in extras]
    if kind == "required" and isinstance(value, dict):
        properties = error.schema.get("properties", {})
        return [f"{where}config key {key_path([*keys, k])}: missing; set it{when}."
                + (f" ({properties[k]['description']})" if "description" in
                   properties.get(k, {}) else "")
                for k in expected if k not in value]
    if kind == "type":
        types = [expected] if isinstance(expected, str) else list(expected)
        wanted = " or ".join(_TYPE_NAMES.get(t, t) for t in types)
        got = "unset (null)" if value is None else f"{_show(value)}, {_type_of(value)}"
        return [f"{where}config key {path}: is {got}; expected {wanted}{when}.{about}"]
    if kind == "enum":
        names = [str(e) for e in expected if e is not None]
        hint = did_you_mean(str(value), names, cutoff=0.5)
        shown = ", ".join("null" if e is None else str(e) for e in expected)
        return [f"{where}config key {path}: {_show(value)} is not one of {shown}.{hint}"]
    if kind == "const":
        return [f"{where}config key {path}: {_show(value)} must be {_yaml(expected)}{when}."]
    bounds = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=",
              "exclusiveMaximum": "<"}
    if kind in bounds:
        return [f"{where}config key {path}: {_show(value)} must be {bounds[kind]} "
                f"{expected}.{about}"]
    if kind == "pattern":
        return [f"{where}config key {path}: {_show(value)} does not match the pattern "
                f"{expected}.{about}"]
    counts = {"minItems": "at least {} item(s)", "maxItems": "at most {} item(s)",
              "minProperties": "at least {} entry(ies)"}
    if kind in counts:
        return [f"{where}config key {path}: needs {counts[kind].format(expected)}, has "
                f"{len(value)}.{about}"]
    if kind == "uniqueItems":
        return [f"{where}config key {path}: {_show(value)} repeats an item."]
    return [f"{where}config key {path}: {error.message}{when}."]


def validate_config(config: dict, schema: str | Path | dict = SCHEMA_PATH,
                    files: Iterable[str | Path] = ()) -> dict:
    """Check ``config`` against the schema and fill in its defaults (in place, as
    ``snakemake.utils.validate`` does); every problem at once, each by file, line and key
    path, with the value, what was expected and the nearest valid key or value. A model key
    of the other kind of model (podium.schema) is refused too, and once the config is valid
    each model keeps only its own kind's keys."""
    schema = schema if isinstance(schema, dict) else load_schema(schema)
    locate = _Locator(files)
    misplaced = _misplaced_model_keys(config, schema)
    problems = [(locate.line(keys) or locate.line(keys[:-1])) + message  # a missing arch
                for keys, message in misplaced]
    errors = _default_filling_validator(schema).iter_errors(config)
    for error in sorted(errors, key=lambda e: [str(k) for k in e.absolute_path]):
        if any(list(error.absolute_path)[:len(keys)] == keys for keys, _ in misplaced):
            continue  # that key is refused already, whatever its value
        for line in _describe(error, schema, locate):
            if line not in problems:
                problems.append(line)
    if problems:
        raise _problems(problems, "config does not fit workflow/schemas/config.schema.yaml")
    return prune_model_keys(config)


def _misplaced_model_keys(config: dict, schema: dict) -> list[tuple[list, str]]:
    """``(key path, message)`` for each model key of the other kind of model than the
    competition trains, and each segmentation model without an arch; checked before the
    defaults are filled, so that only keys the user wrote count."""
    tasks = schema["properties"]["competition"]["properties"]["task"]
    competition = config.get("competition")
    task = (competition if isinstance(competition, dict) else {}).get("task", tasks["default"])
    models = config.get("models")
    if task not in tasks["enum"] or not isinstance(models, dict):
        return []  # the schema reports those
    return [(["models", name, key], message)
            for name, entry in models.items() if isinstance(entry, dict)
            for key, message in model_key_problems(entry, name, task)]


# ------------------------------------------------------------------------- name checks


def name_plan(config: dict) -> list[tuple[str, list, Any]]:
    """``(kind, key path, what to check)`` for every registry name of a validated config: each
    model's augmentation, the look-ups the task's stage declares for its models
    (``TaskStage.model_checks``, kind: the entry point), and the registries' blends and
    post-processors where the task offers them all."""
    competition = config["competition"]
    task = competition["task"]
    stage = task_stage(task)
    plan: list[tuple[str, list, Any]] = []
    for name, entry in sorted(config["models"].items()):
        key = ["models", name]
        if entry.get("augment"):
            plan.append(("augment", [*key, "augment"], entry["augment"]))
        for check, keys in stage.model_checks:
            plan.append((check, [*key, keys[0]],
                         [task if k == "task" else entry.get(k) for k in keys]))
    if stage.blend_methods is None:  # the registry's names (else _entry_checks)
        for name, blend in sorted(config["ensemble"]["blends"].items()):
            plan.append(("blend", ["ensemble", "blends", name],
                         [blend["method"], blend.get("params") or {}, competition["metric"]]))
    if stage.post_methods is None:
        for name, post in sorted((config.get("postprocess") or {}).items()):
            plan.append(("postprocess", ["postprocess", name],
                         [post["method"], post.get("params") or {}]))
    return plan


def _run_check(kind: str, key: str, value: Any) -> None:
    """One registry look-up, through the registry's own function: a stage's model check
    (kind ``module:function``, called with the values and the key) or a shared one."""
    if ":" in kind:
        module, _, function = kind.partition(":")
        getattr(importlib.import_module(module), function)(*value, key)
    elif kind == "augment":
        from podium.train.augment import build_augmentation

        build_augmentation(value, 0, key)
    elif kind == "blend":
        from podium.ensemble.blend import make_blend

        make_blend(value[0], value[1], value[2], key=key)
    elif kind == "postprocess":
        from podium.ensemble.postprocess import make_postprocessor

        make_postprocessor(value[0], value[1], key=key)
    else:
        raise ValueError(f"no name check {kind!r}")


def _stage_checks(config: dict) -> list[tuple[list, str]]:
    """What the task's stage and targets do not offer, each refused by its key rather than
    left out of the run unsaid: an embedded demo of another task, a resize that would move
    its targets, blends, stackers and post-processors it has not (a segmentation competition
    blends by mean, has no stackers and post-processes masks), a post-processor whose config
    key is unset (``TaskStage.post_needs``: instances outside an instance competition), and
    the competition keys its targets refuse (an RLE format with the wrong pixel order)."""
    competition = config["competition"]
    task = competition["task"]
    stage = task_stage(task)
    found: list[tuple[list, str]] = []
    embedded = competition["embedded"]
    if embedded is not None and embedded not in stage.embedded:
        found.append((["competition", "embedded"],
                      f"config key competition.embedded: a {task} competition's demos are "
                      f"{', '.join(sorted(stage.embedded)) or 'none'}, not {embedded!r}; "
                      "pick one, or set embedded: null and competition.dir."))
    resize = config["preprocess"]["resize"]
    if stage.resize_modes is not None and resize not in stage.resize_modes:
        found.append((["preprocess", "resize"],
                      f"config key preprocess.resize: {task} needs "
                      f"{' or '.join(stage.resize_modes)} (pad and center_crop would move or "
                      f"cut its targets against the images), not {resize!r}."))
    try:
        targets_for(task).check_layout(CompetitionLayout.from_config(competition))
    except PodiumInputError as err:
        found.append((["competition"], str(err)))
    if stage.blend_methods is not None:
        for name, blend in sorted(config["ensemble"]["blends"].items()):
            if blend["method"] not in stage.blend_methods:
                found.append((["ensemble", "blends", name, "method"],
                              f"config key ensemble.blends.{name}.method: a {task} "
                              f"competition blends by {', '.join(stage.blend_methods)}, not "
                              f"{blend['method']!r}; change the method or remove the blend."))
    if stage.stack is None:
        for name in sorted(config["ensemble"]["stackers"]):
            found.append((["ensemble", "stackers", name],
                          f"config key ensemble.stackers.{name}: a {task} competition has no "
                          "stackers; set ensemble.stackers: {} in your config."))
    if config["pseudo_label"]["enabled"] and not stage.pseudo_labels:
        found.append((["pseudo_label", "enabled"],
                      f"config key pseudo_label.enabled: a {task} competition has no "
                      "pseudo-labelling round; set it to false."))
    posts = sorted((config.get("postprocess") or {}).items())
    for name, post in posts:
        method = post["method"]
        if stage.post_methods is not None and method not in stage.post_methods:
            found.append((["postprocess", name, "method"],
                          f"config key postprocess.{name}.method: a {task} competition "
                          f"post-processes by {', '.join(stage.post_methods)}, not {method!r}."))
        elif method in stage.post_needs:
            needed, refusal = stage.post_needs[method]
            if not value_at(config, tuple(needed.split("."))):
                found.append((["postprocess", name, "method"],
                              f"config key postprocess.{name}.method: {refusal}"))
    return found


def _plain_checks(config: dict) -> list[tuple[list, str]]:
    """Checks that need no registry import: ``(key path, problem)``."""
    found: list[tuple[list, str]] = _stage_checks(config)
    encoding = config["competition"]["encoding"]
    try:
        codecs.lookup(encoding)
    except LookupError:
        found.append((["competition", "encoding"],
                      f"config key competition.encoding: Python knows no encoding "
                      f"{encoding!r}.{did_you_mean(encoding, _COMMON_ENCODINGS, cutoff=0.5)} "
                      "Common ones: utf-8, utf-8-sig, latin-1, cp1252, shift_jis."))
    competition = config["competition"]
    try:  # the metric must score the task (accuracy cannot score regression, ...)
        check_metric_for_task(competition["metric"], competition["task"])
    except PodiumInputError as err:
        found.append((["competition", "metric"], str(err)))
    weighted = config.get("adversarial", {}).get("weight_training")
    size = config["preprocess"]["size"]
    for name, entry in sorted(config["models"].items()):
        sampler = entry.get("sampler")
        sampler = sampler.get("name") if isinstance(sampler, dict) else sampler
        if weighted and sampler not in (None, "random"):
            found.append((["models", name, "sampler"],
                          f"config key models.{name}.sampler: {sampler} cannot be combined "
                          "with adversarial.weight_training; turn one of them off."))
        crop = entry.get("crop")
        if isinstance(crop, int) and crop > size:
            found.append((["models", name, "crop"],
                          f"config key models.{name}.crop: {crop} is larger than the packed "
                          f"images ({size} x {size}, preprocess.size); set a crop <= {size} "
                          "or leave it unset to train on whole images."))
    return found


_COMMON_ENCODINGS = ("utf-8", "utf-8-sig", "utf-16", "latin-1", "iso-8859-1", "cp1252",
                     "cp1251", "shift_jis", "gbk", "big5", "ascii")
_LIBRARIES = ("torch", "timm", "albumentations", "segmentation-models-pytorch", "scikit-learn")


def _memory_salt(code_cache: Path | None = None) -> str:
    """What every remembered name check depends on besides the name: the libraries'
    versions and podium's code (this module and the registries it imports; a stage's model
    check adds its own module's, see :func:`check_names`)."""
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for library in _LIBRARIES:
        try:
            parts.append(f"{library}={version(library)}")
        except PackageNotFoundError:
            parts.append(f"{library}=none")
    parts.append(module_hash(__name__, cache=code_cache))
    return ";".join(parts)


def _memory_key(kind: str, value: Any, salt: str) -> str:
    """The file name that remembers one passed look-up: what was looked up, where (``salt``),
    never the key path, so the same backbone under another model's name is known too."""
    digest = hashlib.sha1(salt.encode())
    digest.update(json.dumps([kind, value], sort_keys=True, default=str).encode())
    return digest.hexdigest()[:20]


def check_names(config: dict, files: Iterable[str | Path] = (),
                cache_dir: str | Path | None = None,
                note: Callable[[str], None] | None = None) -> None:
    """Look every registry name of a validated config up; all problems at once, each with
    its file, line and key path and the close names. With ``cache_dir`` each look-up that
    passed before (same name, libraries and podium code) is not made again, so a config
    whose names were all seen imports no registry. A library missing where this runs
    (Snakemake's own environment with ``--sdm conda``) skips the names that need it; the jobs
    check them when they start (``note`` is told)."""
    locate = _Locator(files)
    problems = [locate.line(keys) + message for keys, message in _plain_checks(config)]
    memory = Path(cache_dir) if cache_dir is not None else None
    code_cache = memory.parent / "codehash" if memory is not None else None
    salt = _memory_salt(code_cache) if memory is not None else ""
    salts: dict[str, str] = {}  # a stage's check is keyed by its module's code too
    missing: set[str] = set()
    passed: list[Path] = []
    for kind, keys, value in name_plan(config):
        marker = None
        if memory is not None:
            if kind not in salts:
                salts[kind] = salt if ":" not in kind else (
                    f"{salt};{module_hash(kind.partition(':')[0], cache=code_cache)}")
            marker = memory / _memory_key(kind, value, salts[kind])
        if marker is not None and marker.is_file():
            continue
        try:
            _run_check(kind, key_path(keys), value)
        except (ValueError, TypeError) as err:  # PodiumInputError is a ValueError
            message = str(err)
            if not message.startswith("config key"):
                message = f"config key {key_path(keys)}: {message}"
            problems.append(locate.line(keys) + message)
            continue
        except ImportError as err:
            missing.add(err.name or str(err))
            continue
        if marker is not None:
            passed.append(marker)
    if passed:  # a name that failed is never remembered: it is checked each time
        memory.mkdir(parents=True, exist_ok=True)
        for marker in passed:
            marker.write_text("name checked\n")
    if problems:
        raise _problems(problems, "config check")
    if missing and note is not None:
        note(f"podium: config check skipped the names that need {', '.join(sorted(missing))} "
             "(not installed here); the jobs check them when they start.")


def check_config(config: dict, files: Iterable[str | Path] = (),
                 schema: str | Path | dict = SCHEMA_PATH, names: bool = True,
                 cache_dir: str | Path | None = None) -> dict:
    """The whole config check: the schema (filling defaults in place), then, with ``names``,
    every registry name. What the Snakefile calls and ``podium check`` runs."""
    files = list(files)
    validate_config(config, schema, files)
    if names:
        check_names(config, files, cache_dir,
                    note=lambda message: print(message, file=sys.stderr))
    return config


def snakemake_check(workflow: Any, config: dict) -> dict:
    """:func:`check_config` for the Snakefile: the files Snakemake read, the schema beside the
    Snakefile, names checked by the main process only (cluster jobs parse the Snakefile again)
    and remembered under ``.snakemake/podium/``; a problem becomes Snakemake's WorkflowError,
    which it prints as the message alone."""
    from snakemake.exceptions import WorkflowError

    try:
        return check_config(
            config, snakemake_config_files(workflow),
            Path(workflow.basedir) / "workflow/schemas/config.schema.yaml",
            names=workflow.is_main_process, cache_dir=".snakemake/podium/checked-configs")
    except PodiumInputError as err:
        raise WorkflowError(f"podium: {err}") from None
