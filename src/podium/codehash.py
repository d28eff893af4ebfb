"""Code hashes of workflow scripts, derived from what they import: the params that rerun a
stage when, and only when, its code changes.

Snakemake reruns a job when a param changes. A rule's code param is the hash of its script
and of every podium module the script imports, transitively, found by reading the import
statements of the code itself (function-level imports included), so no hand-kept module list
can go stale. Each file is hashed as parsed code (its AST without docstrings), so a comment,
docstring or formatting edit reruns nothing, while any other edit reruns exactly the rules
whose scripts reach that module. An mtime would rerun on a mere touch, and Snakemake's own code
trigger cannot see into the package a script imports.

The AST dump is Python-version specific: a new Python minor version may change every hash once.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PACKAGE = "podium"
PACKAGE_ROOT = Path(__file__).resolve().parent


@dataclass(frozen=True)
class _Module:
    """One parsed podium module: its file, the digest of its parsed code and the podium
    modules it imports."""

    path: Path
    code: bytes
    imports: frozenset[str]


_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _scan(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """One pass over ``tree``: drop the docstring of the module and of every class and
    function (words, not code) and collect every import statement, function-level ones too."""
    imports = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            imports.append(node)
        elif isinstance(node, _DOCUMENTED):
            body = node.body
            if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                    and isinstance(body[0].value.value, str)):
                node.body = body[1:] or [ast.Pass()]
    return imports


def normalised_code(source: str, filename: str = "<source>") -> bytes:
    """The code of ``source`` as its AST without docstrings, comments, formatting or line
    numbers: equal for two sources exactly when they differ only in those."""
    tree = ast.parse(source, filename=filename)
    _scan(tree)
    return ast.dump(tree, include_attributes=False).encode()


def module_path(name: str, root: Path = PACKAGE_ROOT) -> Path | None:
    """The source file of podium module ``name`` (``podium.train.fit`` or a package's
    ``__init__.py``) under ``root``, or None when ``name`` is not a podium module."""
    return _module_files(root).get(name)


@cache
def _module_files(root: Path) -> dict[str, Path]:
    """Every module under ``root`` by dotted name, listed once per process (resolving each
    import by file-system look-ups cost more than parsing)."""
    files: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        package = parts[-1] == "__init__"
        name = ".".join((PACKAGE, *(parts[:-1] if package else parts)))
        if package or name not in files:  # a package wins over a module of its name
            files[name] = path
    return files


def _package_of(name: str, path: Path) -> str:
    """The package a relative import in module ``name`` is resolved against."""
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _raw_imports(statements: list[ast.Import | ast.ImportFrom]) -> list[list]:
    """Import statements as plain data (cacheable): ``[module, level, names]`` for
    ``from`` imports, ``[module, -1, []]`` for plain ones."""
    raw: list[list] = []
    for node in statements:
        if isinstance(node, ast.Import):
            raw += [[alias.name, -1, []] for alias in node.names]
        else:
            raw.append([node.module or "", node.level, [alias.name for alias in node.names]])
    return raw


def imported_names(statements: list[list], name: str, path: Path,
                   root: Path = PACKAGE_ROOT) -> set[str]:
    """The podium modules that the import ``statements`` (:func:`_raw_imports`) of module
    ``name`` (at ``path``) load, as Python would: every package on the way (their
    ``__init__`` runs) and, for ``from x import y``, ``x.y`` when it is a module rather than
    a name defined in ``x``."""
    found: set[str] = set()
    for module, level, names in statements:
        if level < 0:
            targets = [module]
        else:
            base = module
            if level:
                package = _package_of(name, path).split(".")
                anchor = package[: len(package) - (level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base, *(f"{base}.{alias}" for alias in names)]
        for target in targets:
            parts = target.split(".")
            for depth in range(1, len(parts) + 1):
                candidate = ".".join(parts[:depth])
                if module_path(candidate, root) is not None:
                    found.add(candidate)
    found.discard(name)
    return found


def _parse(name: str, root: Path, cache: Path | None = None) -> _Module:
    path = module_path(name, root)
    if path is None:
        raise FileNotFoundError(f"podium has no module {name!r} under {root}")
    return _parse_file(path, name, root, cache)


def _parse_file(path: Path, name: str, root: Path, cache: Path | None = None) -> _Module:
    try:
        code, raw = _facts(path.read_text(encoding="utf-8"), cache)
    except SyntaxError as err:
        raise SyntaxError(f"{path}: {err.msg} (line {err.lineno})") from None
    return _Module(path, code.encode(), frozenset(imported_names(raw, name, path, root)))


@cache
def _facts(source: str, cache: Path | None) -> tuple[str, list[list]]:
    """What hashing needs of a source, by content: the digest of its parsed code and its
    import statements. Parsing all of podium costs about half a second, which every
    ``snakemake`` call (and every cluster job) would pay, so with ``cache`` (a folder) the
    facts are kept there under the source's own digest: an edit is a new key, a touch is not."""
    key = hashlib.sha1(source.encode()).hexdigest()
    stored = cache / f"{key}.json" if cache is not None else None
    if stored is not None:
        try:
            facts = json.loads(stored.read_text())
            return str(facts["code"]), [list(i) for i in facts["imports"]]
        except (OSError, ValueError, KeyError, TypeError):
            pass  # missing or unreadable: computed again and rewritten
    tree = ast.parse(source)
    raw = _raw_imports(_scan(tree))
    code = hashlib.sha1(ast.dump(tree, include_attributes=False).encode()).hexdigest()
    if stored is not None:
        with contextlib.suppress(OSError):
            stored.parent.mkdir(parents=True, exist_ok=True)
            temporary = stored.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(json.dumps({"code": code, "imports": raw}))
            os.replace(temporary, stored)  # atomic: concurrent cluster jobs may write too
    return code, raw


def _closure(start: _Module, root: Path, cache: Path | None = None) -> list[str]:
    seen: set[str] = set()
    todo = list(start.imports)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(_parse(name, root, cache).imports - seen)
    return sorted(seen)


def _hash(start: _Module, root: Path, cache: Path | None = None) -> str:
    digest = hashlib.sha1(start.code)
    for name in _closure(start, root, cache):
        module = _parse(name, root, cache)
        digest.update(b"\0" + module.path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(module.code)
    return digest.hexdigest()[:16]


def import_closure(script: Path, root: Path = PACKAGE_ROOT) -> list[str]:
    """Every podium module that running ``script`` may import, transitively, sorted."""
    return _closure(_parse_file(Path(script), "__main__", root), root)


def script_hash(script: Path, root: Path = PACKAGE_ROOT, cache: Path | None = None) -> str:
    """A short sha1 of ``script``'s code and of every podium module it reaches, each as
    parsed code: the code param of the rule that runs ``script``. ``cache``: a folder that
    keeps each source's parsed facts between calls (see :func:`_facts`)."""
    return _hash(_parse_file(Path(script), "__main__", root, cache), root, cache)


def module_hash(name: str, root: Path = PACKAGE_ROOT, cache: Path | None = None) -> str:
    """The same hash for podium module ``name`` (``podium.configcheck``) and what it reaches:
    a cache key that changes exactly when that code does."""
    return _hash(_parse(name, root, cache), root, cache)
