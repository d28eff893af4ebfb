"""Content hashes of podium's modules, given to rules as a param.

Snakemake reruns a job when its params change; a hash of exactly the modules a rule runs
means a code change reruns exactly the stages it touches (an mtime would rerun on a mere touch,
and a script's own code trigger cannot see into the package it imports).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent


def module_files(name: str) -> list[Path]:
    """The source files of a podium module (``metrics``) or subpackage (``train``)."""
    package = PACKAGE_ROOT / name
    if package.is_dir():
        return sorted(package.rglob("*.py"))
    module = PACKAGE_ROOT / f"{name}.py"
    if module.is_file():
        return [module]
    raise FileNotFoundError(f"podium has no module or package {name!r} under {PACKAGE_ROOT}")


def code_hash(*names: str) -> str:
    """A short sha1 of the named modules' sources (paths relative to the package included)."""
    digest = hashlib.sha1()
    for name in sorted(set(names)):
        for path in module_files(name):
            digest.update(str(path.relative_to(PACKAGE_ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
