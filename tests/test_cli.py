"""The podium command line and the README's promises about commands."""

from __future__ import annotations

import re
import shutil
import subprocess

from conftest import REPO

from podium.cli import main


def _bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_ci_runs_the_readme_test_command():
    blocks = _bash_blocks((REPO / "README.md").read_text())
    test_command = next(b for b in blocks if "pytest" in b)
    ci = (REPO / ".ci/run").read_text()
    assert test_command in ci.splitlines()


def test_readme_run_command_runs_snakemake_on_the_default():
    blocks = _bash_blocks((REPO / "README.md").read_text())
    assert "pip install -e . && snakemake --cores all" in blocks


def test_digits_then_check_passes(tmp_path, capsys):
    assert main(["digits", str(tmp_path / "comp"), "--max-images", "30"]) == 0
    assert main(["check", str(tmp_path / "comp"), "--config", str(REPO / "config.yaml")]) == 0
    assert "OK, " in capsys.readouterr().out


def test_check_reports_a_broken_folder(tmp_path, capsys):
    main(["digits", str(tmp_path / "comp"), "--max-images", "30"])
    victim = sorted((tmp_path / "comp/train").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:20])
    assert main(["check", str(tmp_path / "comp"), "--config", str(REPO / "config.yaml")]) == 1
    err = capsys.readouterr().err
    assert victim.name in err and "truncated" in err


def test_podium_command_is_installed():
    podium = shutil.which("podium")
    assert podium, "the podium console script is not on PATH (pip install -e .)"
    proc = subprocess.run([podium, "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and "podium" in proc.stdout
