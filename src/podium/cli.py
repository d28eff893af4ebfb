"""The ``podium`` command: run the workflow, check a competition folder, write the digits."""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from podium import __version__
from podium.errors import PodiumInputError

WORKFLOW_ROOT = Path(__file__).resolve().parents[2]


def _check(args: argparse.Namespace) -> int:
    """Validate a competition folder as ingest would, without running anything else."""
    from podium.data.ingest import CompetitionLayout, ingest_competition

    section = yaml.safe_load(Path(args.config).read_text())["competition"]
    layout = CompetitionLayout.from_config(section, args.dir)
    with tempfile.TemporaryDirectory() as tmp:
        manifest = ingest_competition(layout, Path(tmp) / "manifest.parquet",
                                      Path(tmp) / "task.json", threads=args.threads)
    counts = manifest["split"].value_counts()
    print(f"{layout.root}: OK, {counts.get('train', 0)} train and {counts.get('test', 0)} "
          "test images")
    return 0


def _digits(args: argparse.Namespace) -> int:
    from podium.data.digits import write_digits_competition

    write_digits_competition(args.out, max_images=args.max_images)
    print(f"wrote the digits competition to {args.out}")
    return 0


def _run(args: argparse.Namespace) -> int:
    """Run the workflow that ships with this podium, passing the rest to snakemake."""
    command = [sys.executable, "-m", "snakemake", "--snakefile",
               str(WORKFLOW_ROOT / "Snakefile"), *args.snakemake_args]
    if not any(a.startswith(("--cores", "-c", "--jobs", "-j")) for a in args.snakemake_args):
        command += ["--cores", "all"]
    return subprocess.call(command)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``podium`` command."""
    parser = argparse.ArgumentParser(prog="podium", description=__doc__)
    parser.add_argument("--version", action="version", version=f"podium {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the workflow (arguments go to snakemake)")
    run.add_argument("snakemake_args", nargs=argparse.REMAINDER)
    run.set_defaults(func=_run)

    check = commands.add_parser("check", help="validate a competition folder")
    check.add_argument("dir", nargs="?", help="competition folder (default: config's dir)")
    check.add_argument("--config", default="config.yaml", help="config with a competition section")
    check.add_argument("--threads", type=int, default=2)
    check.set_defaults(func=_check)

    digits = commands.add_parser("digits", help="write the embedded digits competition")
    digits.add_argument("out", help="folder to write")
    digits.add_argument("--max-images", type=int, default=None)
    digits.set_defaults(func=_digits)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        return args.func(args)
    except PodiumInputError as err:
        print(f"podium: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
