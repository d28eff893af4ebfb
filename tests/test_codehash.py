"""code_hash: content hashes of podium's modules, the params that rerun stages on code change."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from podium import codehash
from podium.codehash import PACKAGE_ROOT, code_hash, module_files


def test_code_hash_is_stable_and_short() -> None:
    first = code_hash("metrics", "data")
    assert re.fullmatch(r"[0-9a-f]{16}", first)
    assert code_hash("metrics", "data") == first
    # Order and repetition of names do not matter.
    assert code_hash("data", "metrics", "data") == first


def test_code_hash_differs_between_packages() -> None:
    hashes = {code_hash(name) for name in ("metrics", "data", "preprocess", "codehash")}
    assert len(hashes) == 4
    assert code_hash("metrics", "data") not in hashes


def test_module_files_of_module_and_subpackage() -> None:
    assert module_files("metrics") == [PACKAGE_ROOT / "metrics.py"]
    data = module_files("data")
    assert data == sorted(data)
    assert {p.name for p in data} >= {"__init__.py", "ingest.py", "dedup.py", "folds.py"}
    assert all(p.suffix == ".py" for p in data)


@pytest.mark.parametrize("name", ["no_such_module", "metrics.py", "data/missing"])
def test_module_files_unknown_name_raises(name: str) -> None:
    with pytest.raises(FileNotFoundError, match="no module or package"):
        module_files(name)
    with pytest.raises(FileNotFoundError):
        code_hash("metrics", name)


@pytest.fixture
def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A throwaway package root with one module and one subpackage."""
    root = tmp_path / "fakepodium"
    (root / "sub" / "inner").mkdir(parents=True)
    (root / "mod.py").write_text("X = 1\n")
    (root / "sub" / "__init__.py").write_text("")
    (root / "sub" / "a.py").write_text("def f():\n    return 1\n")
    (root / "sub" / "inner" / "b.py").write_text("Y = 2\n")
    monkeypatch.setattr(codehash, "PACKAGE_ROOT", root)
    return root


def test_fake_package_is_used(fake_package: Path) -> None:
    assert module_files("mod") == [fake_package / "mod.py"]
    assert [p.relative_to(fake_package).as_posix() for p in module_files("sub")] == [
        "sub/__init__.py", "sub/a.py", "sub/inner/b.py",
    ]


def test_content_change_changes_hash_mtime_does_not(fake_package: Path) -> None:
    nested = fake_package / "sub" / "inner" / "b.py"
    before = code_hash("sub")
    other = code_hash("mod")

    stat = nested.stat()
    os.utime(nested, (stat.st_atime + 1000, stat.st_mtime + 1000))
    assert code_hash("sub") == before

    nested.write_text("Y = 3\n")
    changed = code_hash("sub")
    assert changed != before
    assert code_hash("mod") == other  # an unrelated module keeps its hash

    nested.write_text("Y = 2\n")
    assert code_hash("sub") == before


def test_new_or_renamed_file_changes_hash(fake_package: Path) -> None:
    before = code_hash("sub")
    extra = fake_package / "sub" / "c.py"
    extra.write_text("")
    assert code_hash("sub") != before
    extra.unlink()
    assert code_hash("sub") == before

    (fake_package / "sub" / "a.py").rename(fake_package / "sub" / "a2.py")
    assert code_hash("sub") != before


def test_non_python_files_are_ignored(fake_package: Path) -> None:
    before = code_hash("sub")
    (fake_package / "sub" / "notes.txt").write_text("scratch")
    (fake_package / "sub" / "a.cpython-311.pyc").write_bytes(b"\0\1")
    assert code_hash("sub") == before
