"""The layers of src/podium, kept by import-linter (contracts in pyproject.toml): imports point
down only, nothing below the task plug-ins imports one, the plug-ins are independent of each
other, and no modules import each other in a circle. Each contract is also shown to break on
a planted violation, so the check can fail."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def lint_imports(src: Path) -> subprocess.CompletedProcess:
    """import-linter's command on the package under ``src``, with the repo's contracts."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    proc = subprocess.run(["lint-imports", "--no-cache", "--config", str(REPO / "pyproject.toml")],
                          cwd=REPO, env=env, text=True, capture_output=True, timeout=300)
    proc.output = proc.stdout + proc.stderr
    return proc


def test_the_layers_hold() -> None:
    proc = lint_imports(REPO / "src")
    assert proc.returncode == 0, proc.output
    assert "3 kept, 0 broken" in proc.output


@pytest.mark.parametrize(("module", "line", "contract"), [
    ("data/folds.py", "import podium.tasks.segment.rle",
     "Layers: entry points, task plug-ins, stages, base"),
    ("metrics/__init__.py", "from podium.train import losses",
     "Layers: entry points, task plug-ins, stages, base"),
    ("tasks/segment/masks.py", "import podium.tasks.classify.targets",
     "Task plug-ins: registered by plugins and stages, independent of each other"),
    ("data/targets.py", "import podium.data.ingest", "No import circles"),
])
def test_a_planted_violation_breaks_its_contract(tmp_path: Path, module: str, line: str,
                                                 contract: str) -> None:
    shutil.copytree(REPO / "src/podium", tmp_path / "podium",
                    ignore=shutil.ignore_patterns("__pycache__"))
    path = tmp_path / "podium" / module
    path.write_text(path.read_text() + f"\n{line}\n")
    proc = lint_imports(tmp_path)
    assert proc.returncode != 0, proc.output
    assert f"{contract} BROKEN" in proc.output, proc.output
