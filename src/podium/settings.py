"""The config in one spelling, so that Snakemake's params compare by content.

Snakemake reruns a job when the ``repr`` of one of its params differs from the recorded one
(snakemake.persistence: ``params_changed`` compares the sets of ``repr(value)``). A mapping's
repr follows its key order and a number's repr its type, so a config.yaml rewritten with the
same content in another key order, or with ``0.001`` spelled ``1e-3``, would rerun everything.
The workflow therefore canonicalises the whole config once, right where it is validated, and
every rule's params (the helpers in common.smk included) are built from that:

- every mapping's keys are sorted, recursively; lists keep their order (it means something:
  TTA views, augmentation steps, class names);
- where the schema says ``number`` a value is a float (``1`` and ``1.0`` are one learning
  rate), where it says ``integer`` an integral float is an int (JSON Schema accepts ``15.0``
  epochs, ``range`` would not);
- a string in exponent notation (``1e-3``, ``5E+2``, ``1.5e3``) is the float YAML 1.2 reads.
  PyYAML, which Snakemake loads config files with, follows YAML 1.1, where a float needs a dot
  and a signed exponent, so it reads those as strings. They become floats where the schema
  allows a number but no string, and inside free-form mappings (a stacker's ``params``, an
  albumentations pipeline) that the schema does not describe; a field that may be a string
  keeps them as they are.

Ints and floats inside free-form mappings keep their type: there ``10`` and ``10.0`` may mean
different things to the library that receives them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

import yaml

EXPONENT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+")
"""YAML 1.2's floats in exponent notation: the numbers that YAML 1.1 (PyYAML) reads as strings
whenever their mantissa has no dot or their exponent no sign."""

NUMBER_TYPES = {"number", "integer"}


def canonical(value: Any, schema: Mapping | None = None, root: Mapping | None = None) -> Any:
    """``value`` with sorted mapping keys and the number form its JSON schema asks for.

    ``schema`` describes ``value`` (None: nothing does, free-form); ``root`` is the whole
    schema, for local ``$ref`` pointers (defaults to ``schema``). The function is idempotent
    and never mutates ``value``."""
    root = schema if root is None else root
    schema = _resolved(schema, root)
    if isinstance(value, Mapping):
        return {
            key: canonical(value[key], _property_schema(schema, key), root)
            for key in sorted(value, key=lambda k: (type(k).__name__, str(k)))
        }
    if isinstance(value, list | tuple):
        return type(value)(
            canonical(item, _item_schema(schema, i), root) for i, item in enumerate(value)
        )
    return _scalar(value, _types(schema))


def canonicalise(config: MutableMapping, schema: Mapping | str | Path) -> None:
    """Replace ``config``'s content, in place, by its canonical form under ``schema`` (a
    JSON schema or the path of its YAML file); the Snakefile's ``config`` stays the object
    Snakemake hands to jobs."""
    if not isinstance(schema, Mapping):
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 10x faster
        schema = yaml.load(Path(schema).read_text(encoding="utf-8"), Loader=loader)
    settled = canonical(config, schema)
    config.clear()
    config.update(settled)


def _scalar(value: Any, types: set[str] | None) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        number_wanted = types is None or (types & NUMBER_TYPES and "string" not in types)
        if not (number_wanted and EXPONENT.fullmatch(value)):
            return value
        value = float(value)
    if types and isinstance(value, int | float):
        if "number" in types:
            return float(value) + 0.0  # + 0.0 turns -0.0 into 0.0
        if "integer" in types and isinstance(value, float) and value.is_integer():
            return int(value)
    return value


def _types(schema: Mapping | None) -> set[str] | None:
    """The JSON types a schema allows; None where no schema (or no type) describes a value."""
    if not schema or "type" not in schema:
        return None
    kind = schema["type"]
    return {kind} if isinstance(kind, str) else set(kind)


def _resolved(schema: Mapping | None, root: Mapping | None) -> Mapping | None:
    """Follow local ``$ref`` pointers (``#/$defs/name``)."""
    seen = 0
    while isinstance(schema, Mapping) and isinstance(schema.get("$ref"), str):
        ref = schema["$ref"]
        if not ref.startswith("#") or root is None or seen > 32:
            return schema
        target: Any = root
        for part in filter(None, ref[1:].split("/")):
            part = part.replace("~1", "/").replace("~0", "~")
            target = target[int(part)] if isinstance(target, list) else target[part]
        schema, seen = target, seen + 1
    return schema


def _property_schema(schema: Mapping | None, key: Any) -> Mapping | None:
    if not isinstance(schema, Mapping):
        return None
    properties = schema.get("properties") or {}
    if key in properties:
        return properties[key]
    for pattern, sub in (schema.get("patternProperties") or {}).items():
        if isinstance(key, str) and re.search(pattern, key):
            return sub
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, Mapping) else None


def _item_schema(schema: Mapping | None, index: int) -> Mapping | None:
    if not isinstance(schema, Mapping):
        return None
    prefix = schema.get("prefixItems") or []
    if index < len(prefix):
        return prefix[index]
    items = schema.get("items")
    return items if isinstance(items, Mapping) else None
