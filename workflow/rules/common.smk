import fcntl
import sys
from pathlib import Path

# The Snakefile has put the podium next to it first on sys.path and the jobs' PYTHONPATH.
from podium.codehash import module_hash, script_hash
from podium.schema import ingest_test_keys
from podium.settings import canonical
import podium.tasks.stages  # registers every task plug-in's model stage
from podium.stage import FOLD_FILES, task_stage

_RUN_LOCK = []  # the open file whose flock marks this directory's live podium run


def clear_stale_locks():
    """Remove Snakemake's locks left by a killed run, so the next call just continues.

    Snakemake refuses to start while .snakemake/locks holds files, and a SIGKILLed run never
    deletes its own. Every podium run holds an flock on .snakemake/podium-run.lock for its
    lifetime (the kernel drops it with the process): whoever gets it knows no other run is
    alive here, so any Snakemake lock left over is stale. Jobs that Snakemake starts itself
    (cluster job steps) are not the main process and leave everything alone."""
    if not workflow.is_main_process:
        return
    state = Path(".snakemake")
    state.mkdir(exist_ok=True)
    handle = open(state / "podium-run.lock", "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # another run is alive: its locks are real
        handle.close()
        return
    _RUN_LOCK.append(handle)
    stale = sorted((state / "locks").glob("*")) if (state / "locks").is_dir() else []
    for lock in stale:
        lock.unlink()
    if stale:
        print(
            f"podium: removed {len(stale)} Snakemake locks left by a killed run",
            file=sys.stderr,
        )


clear_stale_locks()

RESULTS = config["results"]
COMPETITION = config["competition"]
# The task plug-in's part in every rule after ingest (podium.stage); what differs between
# tasks is there, so no rule asks which task this is.
STAGE = task_stage(COMPETITION["task"])
EMBEDDED = COMPETITION["embedded"] is not None
# The task's entry point that writes the embedded demo (the config check refuses a demo the
# task does not offer).
EMBEDDED_ENTRY = STAGE.embedded.get(COMPETITION["embedded"]) if EMBEDDED else None
# Every model, blend, stacker and post-processor is of a kind the competition's task offers:
# the config check refuses the others by key (podium.configcheck, from the task's stage).
ROUND1 = sorted(config["models"])
PSEUDO = config["pseudo_label"]
PSEUDO_SUFFIX = "_pl"
# Round-2 models: the round-1 models retrained with confident pseudo-labelled test images.
ROUND2 = (
    [f"{m}{PSEUDO_SUFFIX}" for m in (PSEUDO["models"] or ROUND1)]
    if PSEUDO["enabled"] and STAGE.pseudo_labels
    else []
)
MODELS = sorted(ROUND1 + ROUND2)
BLENDS = sorted(config["ensemble"]["blends"])
STACKERS = sorted(config["ensemble"]["stackers"])
BASE_ENTRIES = MODELS + BLENDS + STACKERS
POSTS = sorted(config.get("postprocess") or {})
FOLDS = list(range(config["folds"]["n_folds"]))
SPLITS = ["train", "test"]
ADVERSARIAL = config["adversarial"]


def _check_names():
    """Models, blends and stackers share one leaderboard, so their names must differ."""
    seen = {}
    unknown = sorted(set(PSEUDO["models"] or []) - set(ROUND1))
    if unknown:
        raise ValueError(f"config key pseudo_label.models: {unknown} are not models.")
    for section, names in (
        ("models", ROUND1),
        ("pseudo_label (round-2 models)", ROUND2),
        ("ensemble.blends", BLENDS),
        ("ensemble.stackers", STACKERS),
    ):
        for name in names:
            if name in seen:
                raise ValueError(
                    f"config: name {name!r} is used in both {seen[name]} and {section}; "
                    "models, blends and stackers need distinct names."
                )
            seen[name] = section


_check_names()


def post_entries(post):
    """The models, blends and stackers a post-processor applies to."""
    chosen = config["postprocess"][post].get("entries") or BASE_ENTRIES
    unknown = sorted(set(chosen) - set(BASE_ENTRIES))
    if unknown:
        raise ValueError(
            f"config key postprocess.{post}.entries: {unknown} are not models, blends or "
            f"stackers ({', '.join(BASE_ENTRIES)})."
        )
    return list(chosen)


POST_PAIRS = [(entry, post) for post in POSTS for entry in post_entries(post)]


wildcard_constraints:
    model="|".join(MODELS) or "(?!x)x",
    blend="|".join(BLENDS) or "(?!x)x",
    stacker="|".join(STACKERS) or "(?!x)x",
    entry="|".join(BASE_ENTRIES),
    post="|".join(POSTS) or "(?!x)x",
    fold=r"\d+",
    split="train|test",


def res(path):
    """A path inside the results folder."""
    return f"{RESULTS}/{path}"


def code(script, entry=None):
    """The code hash of a workflow script and every podium module it imports, transitively,
    each as parsed code (podium.codehash): as a param, a code change reruns exactly the jobs
    whose scripts reach it, while a comment, docstring or formatting edit, or a mere touch,
    reruns nothing (the profiles leave Snakemake's mtime-based code trigger off). ``entry``:
    the task plug-in's ``module:function`` the script runs (the model stage's), whose module
    is hashed the same way, so one task's trainer never reruns another task's jobs."""
    cache = Path(".snakemake/podium/codehash")
    digest = script_hash(
        Path(workflow.basedir) / "workflow/scripts" / script, cache=cache
    )
    if entry is None:
        return digest
    return f"{digest}+{module_hash(STAGE.module_of(entry), cache=cache)}"


def competition_dir():
    if EMBEDDED:
        return res("competition")
    return COMPETITION["dir"]


TEST_SIDE_KEYS = ingest_test_keys()
"""The competition keys the test side reads, as the schema marks them (x-test-side: train_csv
only for its ids, which test ids must not repeat; in segmentation the class keys say how rows
name images); every other key is the train side's alone."""


def competition_inputs(side):
    """One side's tables (ingest checks the images; a new image comes with a new row). The test
    side also reads train.csv, for its ids."""
    root = Path(competition_dir())
    if side == "test":
        return [str(root / COMPETITION[k]) for k in ("train_csv", "sample_submission")]
    external = [
        str(Path(e["dir"]) / e["train_csv"]) for e in COMPETITION.get("external") or []
    ]
    return [str(root / COMPETITION["train_csv"]), *external]


def competition_params(side):
    """The competition section as one side's ingest sees it, so that a key only the other
    side reads never reruns this one."""
    section = dict(
        {k: v for k, v in COMPETITION.items() if not k.startswith("embedded")},
        dir=competition_dir(),
    )
    if side == "test":
        return {k: v for k, v in section.items() if k in TEST_SIDE_KEYS}
    return {
        k: v
        for k, v in section.items()
        if k not in ("sample_submission", "test_images")
    }


def dedup_settings():
    """dedup's params: what finds duplicates and which train images to drop."""
    return {
        k: v for k, v in config["dedup"].items() if k not in ("threads", "leak_labels")
    }


def stage_inputs(*paths):
    """The task stage's inputs (name: path in the results folder) as rule inputs."""
    return {key: res(path) for mapping in paths for key, path in mapping.items()}


def truth_inputs(*paths):
    """What scoring an entry against the train truth reads (the stage's ``truth_inputs``, and
    what ``truth_when`` adds under this config: an instance competition's packed labels),
    with the stage's other ``paths``."""
    return {**CONDITIONAL_TRUTH, **stage_inputs(STAGE.truth_inputs, *paths)}


def config_value(dotted):
    """The config value at a dotted key path ("submission.mask_size")."""
    value = config
    for part in dotted.split("."):
        value = value[part]
    return value


def config_params(paths):
    """The config keys a task stage reads (name: dotted key path) as rule params."""
    return {name: config_value(dotted) for name, dotted in paths.items()}


def model_predictions(kind):
    """Every model's ``oof`` or ``test`` prediction file (the task stage's), in MODELS order:
    what blends and stackers combine."""
    return [res(f"models/{m}/{STAGE.predictions[kind]}") for m in MODELS]


def entry_prediction(name, kind):
    """One model's, blend's or stacker's ``oof`` or ``test`` prediction file."""
    return res(f"{entry_folder(name)}/{name}/{STAGE.predictions[kind]}")


def entry_predictions(kind):
    """Every leaderboard entry's ``oof`` or ``test`` prediction file, in all_entries order."""
    return [
        res(f"{folder}/{name}/{STAGE.predictions[kind]}")
        for name, folder in all_entries()
    ]


def model_settings(name):
    """A model's config entry; a round-2 model trains with its round-1 model's settings."""
    if name in ROUND2:
        name = name[: -len(PSEUDO_SUFFIX)]
    return config["models"][name]


def pseudo_inputs(wildcards):
    """The fold's pseudo labels and the packed test images they point into, for round-2
    models only: round-1 training never reads a test file, so new test images leave it be.
    """
    if wildcards.model in ROUND2:
        return {
            "pseudo": res(f"pseudo/fold{wildcards.fold}.csv"),
            "test_array": res("preprocess/test.npy"),
            "test_index": res("preprocess/test_index.parquet"),
        }
    return {}


# What scoring an entry reads besides the stage's truth inputs under this config (in an
# instance competition the packed instance labels, which score every entry).
CONDITIONAL_TRUTH = {
    key: res(path)
    for dotted, files in STAGE.truth_when.items()
    if config_value(dotted)
    for key, path in files.items()
}


def fold_files(files):
    """A fold's files (name: file name) as rule outputs in models/{model}/fold{fold}/."""
    return {
        key: res(f"models/{{model}}/fold{{fold}}/{name}") for key, name in files.items()
    }


def entry_folder(name):
    """Where a model, blend or stacker writes its predictions."""
    return "models" if name in MODELS else "ensemble"


def all_entries():
    """(name, kind folder) of every leaderboard entry, post-processed variants included."""
    return (
        [(m, "models") for m in MODELS]
        + [(b, "ensemble") for b in BLENDS]
        + [(s, "ensemble") for s in STACKERS]
        + [(f"{entry}+{post}", "postprocess") for entry, post in POST_PAIRS]
    )


def entry_files(prefix):
    """The files of one leaderboard entry in ``prefix`` (the task stage's entry files)."""
    return {key: res(f"{prefix}/{name}") for key, name in STAGE.entry_outputs.items()}


def preprocess_settings():
    """preprocess params, with the keys the task sets itself (a segmentation competition's
    masks are in the stored pixel order, so its images are not turned by EXIF)."""
    settings = {k: v for k, v in config["preprocess"].items() if k != "threads"}
    return {**settings, **STAGE.preprocess_fixed}


def final_outputs():
    outputs = [
        res("submission.csv"),
        res("leaderboard.csv"),
        res("dedup/clusters.csv"),
        res("plots/leaderboard.png"),
        res("plots/learning_curves.png"),
        res("plots/cv_folds.png"),
        *[res(f"plots/{name}") for name in STAGE.plots.values()],
    ]
    if EMBEDDED:
        outputs.append(res("score.json"))
    if ADVERSARIAL["enabled"]:
        outputs.append(res("adversarial/adversarial.json"))
    return outputs


def training_weights():
    """The adversarial sample weights, when training should use them (tasks whose trainer
    takes row weights)."""
    if ADVERSARIAL["weight_training"] and STAGE.row_weights:
        if not ADVERSARIAL["enabled"]:
            raise ValueError(
                "config key adversarial.weight_training needs adversarial.enabled: true."
            )
        return {"weights": res("adversarial/weights.csv")}
    return {}
