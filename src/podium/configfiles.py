"""Reading config files and combining them into the config a run uses.

Snakemake merges every ``--configfile`` over the workflow's ``config.yaml`` key by key, so a
user's file that lists one model would still train config.yaml's two. podium layers them its
own way, in the Snakefile (:func:`layer_snakemake_config`) and in ``podium check``
(:func:`load_configs`) alike:

* the user's files merge over each other in order, as Snakemake merges them (so a demo variant
  can change one key of a model an earlier file lists);
* a named collection they list (``models``, ``ensemble.blends``, ``ensemble.stackers``,
  ``postprocess``; :data:`COLLECTIONS`) replaces config.yaml's instead of merging into it:
  config.yaml's is an example, not a base. Every other section still merges key by key;
* ``--config`` on the command line changes keys of whatever is in force and replaces nothing:
  ``--config "models={resnet10t: {lr: 0.01}}"`` sets one model's rate. Snakemake reads the
  values inside such a mapping as strings, so they are read again as YAML reads them in a file;
* an entry set to null (``models: {fpn: null}``) is dropped, so a later file or ``--config``
  can remove an entry an earlier file lists.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from podium.errors import PodiumInputError

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"
COLLECTIONS: tuple[tuple[str, ...], ...] = (
    ("models",), ("ensemble", "blends"), ("ensemble", "stackers"), ("postprocess",))
"""Named collections of complete entries: a user's file that lists one replaces config.yaml's."""
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TAG = re.compile(r"tag '([^']*)'")


def _short_tag(tag: str) -> str:
    return "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:") else tag


def load_config_file(path: str | Path) -> dict:
    """A config file as a dict; YAML tags (``!!python/object:...``, ``!custom``) and bad
    YAML are refused naming the file, line and column."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PodiumInputError(f"{path}: config file not found.") from None
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise PodiumInputError(f"{path} line {line}: not UTF-8 text (byte offset {err.start}); "
                               "save the config as UTF-8.") from None
    try:
        data = yaml.load(text, Loader=_LOADER)
    except yaml.constructor.ConstructorError as err:
        mark = err.problem_mark
        where = f"{path} line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        found = _TAG.search(str(err.problem))
        tag = _short_tag(found.group(1)) if found else "?"
        raise PodiumInputError(
            f"{where}: YAML tag {tag} is not allowed in a podium config; configs are plain "
            "YAML (mappings, lists, strings, numbers, true/false, null): remove the tag and "
            "write the value itself."
        ) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path} line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        problem = getattr(err, "problem", None) or str(err)
        raise PodiumInputError(
            f"{where}: not valid YAML ({problem}); indent with spaces, not tabs, and quote "
            "values that hold ': ' or start with a special character."
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PodiumInputError(f"{path}: a config is a mapping of keys at the top level, not "
                               f"a {type(data).__name__}.")
    return data


def merge_configs(base: dict, update: Mapping) -> dict:
    """``update`` merged into ``base`` in place, mappings key by key, as Snakemake merges
    ``--configfile`` over the workflow's ``configfile:``."""
    for key, value in update.items():
        if isinstance(value, Mapping):
            below = base.get(key)
            base[key] = merge_configs(below if isinstance(below, dict) else {}, value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def value_at(config: Mapping, path: tuple[str, ...]) -> Any:
    """The value at a key path of a (nested) config, or None where the path does not exist."""
    for key in path:
        if not isinstance(config, Mapping) or key not in config:
            return None
        config = config[key]
    return config


def _holds(config: Mapping, path: tuple[str, ...]) -> bool:
    parent = value_at(config, path[:-1]) if len(path) > 1 else config
    return isinstance(parent, Mapping) and path[-1] in parent


def _as_yaml_reads(value: Any) -> Any:
    """A ``--config`` value with the strings inside its mappings and lists read as YAML
    reads them in a file (``"0.01"`` is a number, ``"null"`` null); Snakemake reads them as
    strings. Plain mappings and lists throughout (Snakemake may hand an immutable map)."""
    if isinstance(value, Mapping):
        return {key: _scalar(_as_yaml_reads(v)) for key, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scalar(_as_yaml_reads(v)) for v in value]
    return value


def _scalar(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        read = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    return read if read is None or isinstance(read, bool | int | float) else value


def layer_configs(shipped: Sequence[Mapping], user: Sequence[Mapping],
                  overrides: Mapping | None = None) -> dict:
    """The config a run uses: the ``shipped`` files (config.yaml) merged, the ``user``'s
    files merged over them, each collection the user's files list replacing the shipped one,
    then the command line's ``overrides`` merged over everything; entries set to null are
    dropped from the collections."""
    config: dict = {}
    for data in shipped:
        merge_configs(config, data)
    mine: dict = {}
    for data in user:
        merge_configs(mine, data)
    for path in COLLECTIONS:
        if _holds(mine, path) and _holds(config, path):
            del (value_at(config, path[:-1]) if len(path) > 1 else config)[path[-1]]
    merge_configs(config, mine)
    merge_configs(config, {key: _as_yaml_reads(value) if isinstance(value, Mapping) else value
                           for key, value in (overrides or {}).items()})
    for path in COLLECTIONS:
        entries = value_at(config, path)
        if _holds(config, path) and entries is None:
            (value_at(config, path[:-1]) if len(path) > 1 else config)[path[-1]] = {}
        elif isinstance(entries, dict):
            for name in [n for n, entry in entries.items() if entry is None]:
                del entries[name]
    return config


def load_configs(paths: Sequence[str | Path], default: str | Path | None = DEFAULT_CONFIG
                 ) -> tuple[dict, list[Path]]:
    """The config that ``snakemake --configfile paths...`` runs: the workflow's default
    config with the files layered over it (:func:`layer_configs`); and the files, lowest
    precedence first (the default first)."""
    files = [Path(p) for p in paths]
    shipped: list[Path] = []
    if default is not None and Path(default).is_file():
        shipped = [Path(default)]
        files = [f for f in files if f.resolve() != shipped[0].resolve()]
    config = layer_configs([load_config_file(f) for f in shipped],
                           [load_config_file(f) for f in files])
    return config, [*shipped, *files]


def snakemake_config_files(workflow: Any) -> list[Path]:
    """The config files Snakemake read, lowest precedence first (the Snakefile's
    ``configfile:``, then ``--configfile``), to say which file and line holds a bad key."""
    given = [str(f) for f in workflow.overwrite_configfiles or ()]
    own = [str(f) for f in workflow.configfiles if str(f) not in given]
    return [Path(f) for f in (*own, *given)]


def layer_snakemake_config(workflow: Any, config: dict) -> None:
    """Replace the ``config`` Snakemake merged by the one :func:`layer_configs` makes of the
    same files and ``--config`` values, in place (jobs get the object Snakemake holds).
    With ``--replace-workflow-config`` the Snakefile's config.yaml is left out, as Snakemake
    leaves it out."""
    settings = workflow.config_settings
    given = [str(f) for f in workflow.overwrite_configfiles or ()]
    shipped = [] if settings.replace_workflow_config else [
        f for f in snakemake_config_files(workflow) if str(f) not in given]
    layered = layer_configs([load_config_file(f) for f in shipped],
                            [load_config_file(f) for f in given], settings.config)
    config.clear()
    config.update(layered)
