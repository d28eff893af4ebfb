"""The config schema, podium's one source of defaults and of which model keys apply where.

``workflow/schemas/config.schema.yaml`` holds every default. The Snakefile fills them into the
config when it validates it, and the settings dataclasses take theirs from here
(:func:`schema_field`) rather than restating them, so a default is written once and cannot
drift (tests/test_config.py holds config.yaml's restated values to it as well).

A model entry is a classification model (podium.tasks.classify) or a segmentation model
(podium.tasks.segment), as ``competition.task``'s ``x-model-kinds`` says. The schema marks the keys
that apply to one kind only with ``x-model: classification`` or ``x-model: segmentation``
(JSON Schema ignores such annotations); a key of the other kind is refused by name
(:func:`model_key_problems`) rather than silently dropped, and the defaults of the other kind
are pruned from each entry once they are filled (:func:`prune_model_keys`).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from podium.errors import did_you_mean

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow/schemas/config.schema.yaml"
CLASSIFICATION = "classification"
"""The kind of model a task trains unless ``x-model-kinds`` says otherwise; its own keys are
marked ``x-model: classification``, and they are refused by name in a model of another kind
("does not apply to ..."), while another kind's keys are refused as "applies to ... only"."""
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_schema(path: str | Path = SCHEMA_PATH) -> dict:
    """The schema as a fresh dict (callers may not share what a validator annotates)."""
    return yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_LOADER)


@functools.cache
def _schema() -> dict:
    return load_schema()


def _node(path: tuple[str, ...]) -> dict:
    """The schema of a key path; a collection (``models``) or a list (``external``) stands
    for any of its entries."""
    node = _schema()
    for key in path:
        node = node["items"] if node.get("type") == "array" else node
        if key not in (node.get("properties") or {}):
            node = node["additionalProperties"]  # any entry of a collection
        node = node["properties"][key]
    return node


def schema_default(*path: str) -> Any:
    """The schema's default at ``path`` (``"preprocess", "size"``; ``"models", "lr"`` for
    every model's ``lr``), a copy so that no caller shares a list."""
    return copy.deepcopy(_node(path)["default"])


def schema_field(*path: str) -> Any:
    """A dataclass field whose default is the schema's at ``path``."""
    value = schema_default(*path)
    if isinstance(value, list | dict):
        return dataclasses.field(default_factory=functools.partial(schema_default, *path))
    return dataclasses.field(default=value)


def _competition_properties() -> dict[str, dict]:
    return _node(("competition",))["properties"]


def ingest_test_keys() -> tuple[str, ...]:
    """The competition keys the test side's ingest reads (``x-test-side``); every other key
    is the train side's alone, so changing it reruns no test-side job."""
    return tuple(k for k, p in _competition_properties().items() if p.get("x-test-side"))


def task_keys(task: str) -> tuple[str, ...]:
    """The competition keys that belong to ``task``'s plug-in (``x-task``), in schema order."""
    return tuple(k for k, p in _competition_properties().items() if p.get("x-task") == task)


def task_options(task: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """``task``'s own competition keys: the values ``given`` sets, the schema's defaults for
    the rest (a plug-in's settings read from an older task.json get the new keys' defaults)."""
    return {k: given[k] if k in given else schema_default("competition", k)
            for k in task_keys(task)}


def foreign_task_key_problems(section: Mapping[str, Any], task: str) -> list[str]:
    """Messages for keys of another task's plug-in that ``section`` (the config's
    ``competition``) sets to anything but their default: such a key would be ignored."""
    return [f"config key competition.{key} applies to {p['x-task']} competitions, not to "
            f"task {task!r}; remove it."
            for key, p in _competition_properties().items()
            if p.get("x-task") not in (None, task) and key in section
            and section[key] != p.get("default")]


def model_kind(task: str) -> str:
    """The kind of model a competition of ``task`` trains (the schema's ``x-model-kinds`` of
    ``competition.task``; a task it does not list trains classification models)."""
    return _node(("competition", "task"))["x-model-kinds"].get(task, CLASSIFICATION)


def _model_properties() -> dict[str, dict]:
    return _node(("models",))["additionalProperties"]["properties"]


def model_keys(kind: str) -> tuple[str, ...]:
    """The model keys that apply to ``kind`` (classification or segmentation)."""
    return tuple(k for k, p in _model_properties().items() if p.get("x-model", kind) == kind)


def model_key_problems(entry: Mapping, name: str, task: str | None = None
                       ) -> list[tuple[str, str]]:
    """``(key, message)`` for each key of a model entry that belongs to another kind of model,
    and for each key its kind requires (``x-required``: what it names) that it lacks. ``task``
    is the competition's (None: a classification model)."""
    kind = model_kind(task or "")
    where = f" (competition.task is {task})" if task else ""
    problems = []
    for key in entry:
        owner = _model_properties().get(key, {}).get("x-model", kind)
        if owner == kind:
            continue
        if owner == CLASSIFICATION:
            problems.append((key, f"config key models.{name}.{key}: does not apply to {kind} "
                                  f"models{where}; they take {', '.join(model_keys(kind))}."))
        else:
            problems.append((key, f"config key models.{name}.{key}: applies to {owner} "
                                  f"models only{where}; remove it."))
    for key, spec in _model_properties().items():
        if spec.get("x-model") == kind and "x-required" in spec and entry.get(key) is None:
            problems.append((key, f"config key models.{name}.{key}: missing; a {kind} model "
                                  f"names its {spec['x-required']}: "
                                  f"{', '.join(map(str, spec['enum']))}."))
    return problems


def unknown_model_keys(entry: Mapping, name: str, kind: str) -> list[str]:
    """Messages for keys of a model entry that no model of ``kind`` has, with the nearest
    key: what the schema says in the workflow, for settings built directly."""
    known = model_keys(kind)
    return [f"config key models.{name}.{key}: not a setting of a {kind} model."
            f"{did_you_mean(str(key), known, cutoff=0.6)} Known: {', '.join(known)}."
            for key in entry if key not in _model_properties()]


def prune_model_keys(config: dict) -> dict:
    """Drop from every model entry the keys of the other kind of model (after validation
    these are only the defaults the schema filled), in place; returns ``config``."""
    keys = set(model_keys(model_kind(config["competition"]["task"])))
    for entry in config["models"].values():
        for key in [k for k in entry if k not in keys]:
            del entry[key]
    return config
