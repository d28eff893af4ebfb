"""The ``podium`` command: run the workflow, check a competition folder, write the digits."""

from __future__ import annotations

import argparse
import contextlib
import logging
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from podium import __version__
from podium.errors import PodiumInputError

WORKFLOW_ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def _collected_warnings() -> Iterator[list[str]]:
    """The warnings podium logs meanwhile (ingest's notes), to print in the check's summary
    instead of as log lines."""
    notes: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            notes.append(record.getMessage())

    logger = logging.getLogger("podium")
    handler, propagate = Collect(logging.WARNING), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield notes
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _thin_classes(manifest, task_path: Path, n_folds: int) -> str | None:
    """The folds' warning about classes with fewer images than folds, for the check."""
    from podium.data.folds import thin_classes_warning
    from podium.data.targets import targets_for
    from podium.task import TARGET_COLUMN, TaskSpec

    spec = TaskSpec.load(task_path)
    only = manifest["train_only"].astype(bool) if "train_only" in manifest else False
    train = manifest[(manifest["split"] == "train") & ~only]
    labels, classes = targets_for(spec.task).stratification(train[TARGET_COLUMN], spec)
    return None if classes is None else thin_classes_warning(labels, classes, n_folds)


def _check(args: argparse.Namespace) -> int:
    """Validate the config (schema and every registry name) and the competition folder as
    ingest would, without running anything else."""
    from podium.configcheck import SCHEMA_PATH, check_names, validate_config
    from podium.configfiles import load_configs
    from podium.data.ingest import CompetitionLayout, ingest_competition
    from podium.tasks import plugins  # noqa: F401  (registers every task's targets)

    paths = args.config if args.config is not None else (
        ["config.yaml"] if Path("config.yaml").is_file() else [])
    config, files = load_configs(paths)
    validate_config(config, SCHEMA_PATH, files)
    failed = False
    try:
        check_names(config, files)
    except PodiumInputError as err:
        print(f"podium: {err}", file=sys.stderr)
        failed = True
    layout = CompetitionLayout.from_config(config["competition"], args.dir)
    with tempfile.TemporaryDirectory() as tmp, _collected_warnings() as notes:
        task_path = Path(tmp) / "task.json"
        manifest = ingest_competition(layout, Path(tmp) / "manifest.parquet", task_path,
                                      threads=args.threads)
        thin = _thin_classes(manifest, task_path, config["folds"]["n_folds"])
    counts = manifest["split"].value_counts()
    print(f"{layout.root}: {'images OK' if failed else 'OK'}, {counts.get('train', 0)} train "
          f"and {counts.get('test', 0)} test images")
    for note in [*notes, *([thin] if thin else [])]:
        print(f"  warning: {note}")
    return 1 if failed else 0


def _digits(args: argparse.Namespace) -> int:
    from podium.data.digits import write_digits_competition

    write_digits_competition(args.out, max_images=args.max_images)
    print(f"wrote the digits competition to {args.out}")
    return 0


def _config_files(snakemake_args: list[str]) -> list[str]:
    """The files given to snakemake's ``--configfile`` / ``--configfiles``."""
    files, taking = [], False
    for arg in snakemake_args:
        if arg in ("--configfile", "--configfiles"):
            taking = True
        elif arg.startswith(("--configfile=", "--configfiles=")):
            files.append(arg.split("=", 1)[1])
            taking = False
        elif taking and not arg.startswith("-"):
            files.append(arg)
        else:
            taking = False
    return files


def _run(args: argparse.Namespace) -> int:
    """Run the workflow that ships with this podium, passing the rest to snakemake; config
    files are read first, so a YAML tag or a YAML error is named by file and line
    (Snakemake alone would say only "not valid JSON or YAML")."""
    from podium.configfiles import load_config_file

    for path in _config_files(args.snakemake_args):
        load_config_file(path)
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
    check.add_argument("--config", nargs="+", default=None, metavar="FILE",
                       help="config files layered over the workflow's config.yaml in order, as "
                            "snakemake --configfile layers them: the models, blends, stackers "
                            "and post-processors they list replace config.yaml's (default: "
                            "./config.yaml if present)")
    check.add_argument("--threads", type=int, default=2)
    check.set_defaults(func=_check)

    digits = commands.add_parser("digits", help="write the embedded digits competition")
    digits.add_argument("out", help="folder to write")
    digits.add_argument("--max-images", type=int, default=None)
    digits.set_defaults(func=_digits)

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["run"] and argv[1:2] not in (["-h"], ["--help"]):
        # everything after run is snakemake's, options first included (argparse's
        # REMAINDER refuses "podium run -n")
        args = argparse.Namespace(func=_run, snakemake_args=argv[1:])
    else:
        args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        return args.func(args)
    except PodiumInputError as err:
        print(f"podium: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
