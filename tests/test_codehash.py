"""Code hashes derived from imports (podium.codehash): each rule's code param covers exactly
the podium modules its script imports, transitively, as parsed code.

The independent reference for "which modules a script imports" is the standard library's
``modulefinder``, which scans compiled bytecode (function-level imports included) rather than
podium's AST walk.
"""

from __future__ import annotations

import ast
import modulefinder
import re
import shutil
from functools import cache
from pathlib import Path

import pytest

from podium import codehash
from podium.codehash import (
    PACKAGE_ROOT,
    import_closure,
    module_hash,
    module_path,
    normalised_code,
    script_hash,
)

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((REPO / "workflow/scripts").glob("*.py"))
RULE_FILES = sorted((REPO / "workflow/rules").glob("*.smk"))
MODULES = sorted(PACKAGE_ROOT.rglob("*.py"))


@cache
def reference_closure(script: Path, src: Path = PACKAGE_ROOT.parent) -> frozenset[str]:
    """The podium modules ``script`` imports, as modulefinder finds them in its bytecode."""
    finder = modulefinder.ModuleFinder(path=[str(src)])
    finder.run_script(str(script))
    return frozenset(m for m in finder.modules if m == "podium" or m.startswith("podium."))


def module_name(path: Path, root: Path = PACKAGE_ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    parts = parts[:-1] if parts[-1] == "__init__" else parts
    return ".".join(("podium", *parts))


# --- parsed code ------------------------------------------------------------------------------

CODE = '''"""Module words."""
import os


def f(x):
    """Function words."""
    return x + 1  # a comment


class C:
    """Class words."""

    y = 2
'''


@pytest.mark.parametrize("variant", [
    CODE.replace("# a comment", "# another comment"),
    CODE.replace('"""Module words."""', '"""Other words,\n\nover lines."""'),
    CODE.replace('"""Function words."""', "'single-quoted words'"),
    CODE.replace('    """Class words."""\n\n', ""),
    CODE.replace("return x + 1", "return (x\n            + 1)"),
    CODE + "\n\n# trailing comment\n",
])
def test_comments_docstrings_and_formatting_are_not_code(variant: str) -> None:
    assert normalised_code(variant) == normalised_code(CODE)


@pytest.mark.parametrize("variant", [
    CODE.replace("x + 1", "x + 2"),
    CODE.replace("y = 2", "y = 3"),
    CODE.replace("import os", "import sys"),
    CODE.replace("def f(x):", "def g(x):"),
    CODE + "\nZ = 'a string that is no docstring'\n",
    CODE.replace('    return x + 1  # a comment', '    """Function words."""\n    return x + 1'),
])
def test_any_other_edit_is_code(variant: str) -> None:
    assert normalised_code(variant) != normalised_code(CODE)


# --- imports ----------------------------------------------------------------------------------


@pytest.fixture
def fake_src(tmp_path: Path) -> Path:
    """A throwaway ``podium`` with relative, absolute, aliased and function-level imports."""
    root = tmp_path / "podium"
    files = {
        "__init__.py": "",
        "base.py": "X = 1\n",
        "unused.py": "Y = 1\n",
        "pkg/__init__.py": "from podium.base import X\n",
        "pkg/a.py": "from . import b\nfrom .sub import c as renamed\n",
        "pkg/b.py": "def late():\n    import podium.lazy as lazy\n    return lazy\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/c.py": "from ..b import late\nfrom ... import base\n",
        "lazy.py": "import numpy\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (tmp_path / "script.py").write_text("from podium.pkg.a import b\nimport json\n")
    return tmp_path


def test_closure_follows_every_kind_of_import(fake_src: Path) -> None:
    root = fake_src / "podium"
    closure = import_closure(fake_src / "script.py", root)
    assert closure == ["podium", "podium.base", "podium.lazy", "podium.pkg", "podium.pkg.a",
                       "podium.pkg.b", "podium.pkg.sub", "podium.pkg.sub.c"]
    assert set(closure) == reference_closure(fake_src / "script.py", fake_src)


def test_an_unimported_module_does_not_count(fake_src: Path) -> None:
    root = fake_src / "podium"
    before = script_hash(fake_src / "script.py", root)
    (root / "unused.py").write_text("Y = 2\n")
    assert script_hash(fake_src / "script.py", root) == before
    (root / "lazy.py").write_text("import numpy\nZ = 1\n")  # reached only inside a function
    assert script_hash(fake_src / "script.py", root) != before


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_each_scripts_closure_matches_modulefinder(script: Path) -> None:
    assert set(import_closure(script)) == reference_closure(script)


# --- each module edited in turn -----------------------------------------------------------------


def reworded(text: str) -> str:
    """``text`` with its module docstring reworded (or one added), a comment on top and a
    blank line after every top-level statement: the same code."""
    tree = ast.parse(text)
    lines = text.splitlines()
    if ast.get_docstring(tree) is not None:
        first = tree.body[0]
        lines[first.lineno - 1:first.end_lineno] = ['"""Reworded, over\n\ntwo lines."""']
    else:
        lines.insert(0, '"""A new docstring."""')
    return "# a comment\n" + "\n".join(lines).replace("\ndef ", "\n\ndef ") + "\n"


def test_editing_each_module_changes_exactly_the_hashes_of_the_scripts_that_import_it(
        tmp_path: Path) -> None:
    """Every podium module in turn gets a real code change, then a comment and docstring
    change: the first changes the hash of exactly the scripts whose imports (modulefinder)
    reach it, the second changes none."""
    root = tmp_path / "podium"
    shutil.copytree(PACKAGE_ROOT, root, ignore=shutil.ignore_patterns("__pycache__"))
    reaches = {s.name: reference_closure(s) for s in SCRIPTS}
    original = {s.name: script_hash(s, root) for s in SCRIPTS}
    assert original == {s.name: script_hash(s) for s in SCRIPTS}
    for path in MODULES:
        copy = root / path.relative_to(PACKAGE_ROOT)
        text = copy.read_text()
        name = module_name(path)
        copy.write_text(text + "\n_CODEHASH_PROBE = 1\n")
        changed = {s.name for s in SCRIPTS if script_hash(s, root) != original[s.name]}
        assert changed == {s for s, closure in reaches.items() if name in closure}, name
        copy.write_text(reworded(text))
        assert all(script_hash(s, root) == original[s.name] for s in SCRIPTS), name
        copy.write_text(text)


def test_a_script_edit_changes_its_own_hash_only(tmp_path: Path) -> None:
    copies = []
    for script in SCRIPTS[:3]:
        copies.append(tmp_path / script.name)
        shutil.copy2(script, copies[-1])
    before = [script_hash(c) for c in copies]
    copies[0].write_text(copies[0].read_text() + "\n# a comment only\n")
    assert [script_hash(c) for c in copies] == before
    copies[0].write_text(copies[0].read_text() + "\nprint('code')\n")
    after = [script_hash(c) for c in copies]
    assert after[0] != before[0] and after[1:] == before[1:]


def test_hashes_are_short_and_stable() -> None:
    first = script_hash(SCRIPTS[0])
    assert re.fullmatch(r"[0-9a-f]{16}", first)
    codehash._facts.cache_clear()
    assert script_hash(SCRIPTS[0]) == first
    assert module_hash("podium.configcheck") != module_hash("podium.metrics")


def test_the_disk_cache_gives_the_same_hashes_and_is_keyed_by_content(tmp_path: Path) -> None:
    """Parsed facts kept on disk (what every snakemake call reuses) change nothing: the same
    hashes, read back from the files; a bad file is recomputed; an edit is a new key."""
    cache = tmp_path / "cache"
    plain = _workflow_hashes()
    codehash._facts.cache_clear()
    assert _workflow_hashes(cache) == plain
    files = sorted(cache.glob("*.json"))
    reached = set().union(*(reference_closure(s) for s in SCRIPTS),
                          *(reference_closure(module_path(m)) | {m} for m in _entry_modules()))
    assert len(files) >= len(reached) + len(SCRIPTS)
    codehash._facts.cache_clear()
    assert _workflow_hashes(cache) == plain  # from disk

    for path in files:  # the cache is what is read: a changed digest shows in the hash
        path.write_text(path.read_text().replace('"code": "', '"code": "0'))
    codehash._facts.cache_clear()
    assert script_hash(SCRIPTS[0], cache=cache) != plain[SCRIPTS[0].name]
    for path in files:  # unreadable entries are computed again
        path.write_text("{not json")
    codehash._facts.cache_clear()
    assert _workflow_hashes(cache) == plain

    copy = tmp_path / SCRIPTS[0].name
    copy.write_text(SCRIPTS[0].read_text() + "\nprint('code')\n")
    assert script_hash(copy, cache=cache) == script_hash(copy) != plain[SCRIPTS[0].name]
    codehash._facts.cache_clear()


def _workflow_hashes(cache: Path | None = None) -> dict[str, str]:
    """What the rules hash: every script, and every task stage's entry module."""
    return {**{s.name: script_hash(s, cache=cache) for s in SCRIPTS},
            **{m: module_hash(m, cache=cache) for m in _entry_modules()}}


def test_unknown_module_is_named() -> None:
    with pytest.raises(FileNotFoundError, match="podium has no module 'podium.nope'"):
        module_hash("podium.nope")


# --- rules --------------------------------------------------------------------------------------


def _rule_blocks(text: str) -> list[str]:
    return re.split(r"\n(?=(?:    )*rule(?: \w+)?:)", text)


def test_every_scripted_rule_hashes_its_own_script() -> None:
    """A rule's code param names the script its ``script:`` directive runs, and the task
    plug-in's entry point the script runs, so the hash is of the code that job runs."""
    seen = 0
    for path in RULE_FILES:
        for block in _rule_blocks(path.read_text()):
            script = re.search(r'script:\s*"\.\./scripts/([\w.]+)"', block)
            if not script:
                continue
            rule = re.search(r"rule (\w+):|name:\s*(\S+)", block).group(0)
            codes = re.findall(r'code=code\("([\w.]+)"(?:, ([\w.]+))?\)', block)
            assert [name for name, _ in codes] == [script.group(1)], f"{path.name}: rule {rule}"
            # a rule that runs a task plug-in's entry point hashes that entry's module too
            entry = re.search(r"entry=([\w.]+),", block)
            assert codes[0][1] == (entry.group(1) if entry else ""), f"{path.name}: rule {rule}"
            seen += 1
    assert seen >= len(SCRIPTS) - 1


def _entry_modules() -> list[str]:
    import podium.tasks.stages  # noqa: F401  (registers every task's stage)
    from podium.stage import TaskStage, registered_stages, task_stage

    return sorted({TaskStage.module_of(entry) for task in registered_stages()
                   for entry in (*task_stage(task).entry_points.values(),
                                 task_stage(task).targets, task_stage(task).metrics)
                   if entry is not None})


def test_editing_each_module_changes_exactly_the_stage_entries_that_reach_it(
        tmp_path: Path) -> None:
    """The stage rules (train, predict, gather, blend, stack, post-process, submit, score,
    plot) hash their script and the task plug-in's entry module (common.smk's
    ``code(script, entry)``): a code change of any module changes the hash of exactly the
    entry modules that import it, or are it; a comment edit changes none. So an edit of the
    segmentation trainer reruns no classification model, and the other way."""
    root = tmp_path / "podium"
    shutil.copytree(PACKAGE_ROOT, root, ignore=shutil.ignore_patterns("__pycache__"))
    entries = _entry_modules()
    reaches = {m: reference_closure(module_path(m)) | {m} for m in entries}
    original = {m: module_hash(m, root) for m in entries}
    for path in MODULES:
        copy = root / path.relative_to(PACKAGE_ROOT)
        text = copy.read_text()
        name = module_name(path)
        copy.write_text(text + "\n_CODEHASH_PROBE = 1\n")
        changed = {m for m in entries if module_hash(m, root) != original[m]}
        assert changed == {m for m, closure in reaches.items() if name in closure}, name
        copy.write_text(reworded(text))
        assert all(module_hash(m, root) == original[m] for m in entries), name
        copy.write_text(text)
    for entry in entries:  # the classify plug-in's entries reach no segment module
        if not entry.startswith("podium.tasks.segment"):
            assert not any(m.startswith("podium.tasks.segment") for m in reaches[entry]), entry
    assert "podium.train.fit" in reaches["podium.tasks.segment.fit"]  # the one fold trainer
