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
import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PACKAGE = "podium"
PACKAGE_ROOT = Path(__file__).resolve().parent


@dataclass(frozen=True)
class _Module:
    """One parsed podium module: its file, normalised code and the podium modules it imports."""

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
    parts = name.split(".")
    if parts[0] != PACKAGE:
        return None
    base = root.joinpath(*parts[1:])
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _package_of(name: str, path: Path) -> str:
    """The package a relative import in module ``name`` is resolved against."""
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def imported_names(statements: list[ast.Import | ast.ImportFrom], name: str, path: Path,
                   root: Path = PACKAGE_ROOT) -> set[str]:
    """The podium modules that import ``statements`` of module ``name`` (at ``path``) load, as
    Python would: every package on the way (their ``__init__`` runs) and, for
    ``from x import y``, ``x.y`` when it is a module rather than a name defined in ``x``."""
    found: set[str] = set()
    for node in statements:
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                package = _package_of(name, path).split(".")
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        for target in targets:
            parts = target.split(".")
            for depth in range(1, len(parts) + 1):
                candidate = ".".join(parts[:depth])
                if module_path(candidate, root) is not None:
                    found.add(candidate)
    found.discard(name)
    return found


def _parse(name: str, root: Path) -> _Module:
    path = module_path(name, root)
    if path is None:
        raise FileNotFoundError(f"podium has no module {name!r} under {root}")
    return _parse_file(path, name, root)


def _parse_file(path: Path, name: str, root: Path) -> _Module:
    return _analyse(path.read_text(encoding="utf-8"), path, name, root)


@cache
def _analyse(source: str, path: Path, name: str, root: Path) -> _Module:
    """Parsed once per content: the Snakefile hashes one module for many rules."""
    tree = ast.parse(source, filename=str(path))
    imports = frozenset(imported_names(_scan(tree), name, path, root))
    return _Module(path, ast.dump(tree, include_attributes=False).encode(), imports)


def _closure(start: _Module, root: Path) -> list[str]:
    seen: set[str] = set()
    todo = list(start.imports)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(_parse(name, root).imports - seen)
    return sorted(seen)


def _hash(start: _Module, root: Path) -> str:
    digest = hashlib.sha1(start.code)
    for name in _closure(start, root):
        module = _parse(name, root)
        digest.update(b"\0" + module.path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(module.code)
    return digest.hexdigest()[:16]


def import_closure(script: Path, root: Path = PACKAGE_ROOT) -> list[str]:
    """Every podium module that running ``script`` may import, transitively, sorted."""
    return _closure(_parse_file(Path(script), "__main__", root), root)


def script_hash(script: Path, root: Path = PACKAGE_ROOT) -> str:
    """A short sha1 of ``script``'s code and of every podium module it reaches, each as
    parsed code: the code param of the rule that runs ``script``."""
    return _hash(_parse_file(Path(script), "__main__", root), root)


def module_hash(name: str, root: Path = PACKAGE_ROOT) -> str:
    """The same hash for podium module ``name`` (``podium.configcheck``) and what it reaches:
    a cache key that changes exactly when that code does."""
    return _hash(_parse(name, root), root)
