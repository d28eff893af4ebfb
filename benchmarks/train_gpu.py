"""Training on a CUDA card: mixed precision and channels_last against plain fp32, same run.

Why: podium trains in bf16 autocast with channels_last on a GPU by default (``precision:
auto``, ``channels_last: true``). This measures what that buys and checks the CUDA paths end to
end, in three parts:

1. Training steps (forward, backward, AdamW) of podium's timm models on uint8 batches already on
   the card, in five modes: fp32 NCHW (the baseline: what a plain PyTorch loop does), fp32
   channels_last, bf16 NCHW, bf16 channels_last (podium's default) and fp16 channels_last with
   loss scaling. Images/s and peak memory per mode.
2. Whole folds through ``train_fold`` (the rule's code: packed memory-mapped arrays, pinned
   memory, ``threads - 1`` loader workers, validation every epoch, TTA predictions) on a
   synthetic 4-class set: podium's default against fp32 NCHW, and with 0 loader workers.
3. GPU pinning on the real card: NVML's GPU count and the device ``pin_gpu`` gives a job.

Prints JSON and writes it to ``--out`` (default benchmarks/out/train_gpu.json). Without a GPU
it runs a small CPU version of parts 1 and 2 (``--smoke`` shrinks everything further), so the
script itself is tested here.

    python benchmarks/train_gpu.py [--steps 20] [--fold-images 8192] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from podium.task import TaskSpec
from podium.tasks.classify.fit import FoldOutputs, TrainSettings, train_fold
from podium.tasks.classify.models import build_classifier
from podium.train.devices import default_lock_dir, visible_gpu_count
from podium.train.runtime import Runtime

OUT = Path(__file__).resolve().parent / "out"
MODES = {  # name: (autocast dtype, channels_last)
    "fp32": (None, False),
    "fp32_channels_last": (None, True),
    "bf16": (torch.bfloat16, False),
    "bf16_channels_last": (torch.bfloat16, True),
    "fp16_channels_last": (torch.float16, True),
}
BASELINE, DEFAULT = "fp32", "bf16_channels_last"


def machine() -> dict:
    info = {"torch": torch.__version__, "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info |= {"card": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
                 "multiprocessors": props.multi_processor_count,
                 "capability": f"{props.major}.{props.minor}",
                 "cuda_runtime": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
                 "bf16": torch.cuda.is_bf16_supported()}
        smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, check=False)
        info["driver"] = smi.stdout.strip()
    return info


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def step_throughput(backbone: str, size: int, batch: int, mode: str, steps: int) -> dict:
    """Images/s of training steps in one precision/memory-format mode (median of timed steps
    after warm-up, which also lets cuDNN pick its kernels)."""
    amp_dtype, channels_last = MODES[mode]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    runtime = Runtime(device, amp_dtype, {}, channels_last)
    torch.manual_seed(0)
    model = runtime.model(build_classifier(backbone, 10, 3))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(enabled=amp_dtype == torch.float16)
    images = torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8, device=device)
    labels = torch.randint(0, 10, (batch,), device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    model.train()
    timings = []
    for step in range(steps + 5):  # five warm-up steps
        sync()
        start = time.perf_counter()
        with runtime.autocast():
            loss = torch.nn.functional.cross_entropy(model(runtime.batch(images)), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        sync()
        if step >= 5:
            timings.append(time.perf_counter() - start)
    median = float(np.median(timings))
    out = {"backbone": backbone, "size": size, "batch": batch, "mode": mode,
           "median_step_s": round(median, 5), "images_per_s": round(batch / median, 1),
           "loss_finite": bool(torch.isfinite(loss).item())}
    if device.type == "cuda":
        out["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    del model, optimizer
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


def synthetic_fold_inputs(root: Path, n_train: int, n_test: int, size: int) -> dict[str, Path]:
    """Class k is a bright vertical band in quarter k of noisy images: learnable in an epoch."""
    rng = np.random.default_rng(0)

    def images(labels: np.ndarray) -> np.ndarray:
        out = rng.integers(0, 60, (len(labels), size, size, 3), dtype=np.uint8)
        quarter = size // 4
        for k in range(4):
            out[labels == k, :, k * quarter:(k + 1) * quarter] += 150
        return out

    y = rng.integers(0, 4, n_train)
    ids, test_ids = [f"tr{i}" for i in range(n_train)], [f"te{i}" for i in range(n_test)]
    paths = {n: root / n for n in ("train.npy", "train_index.parquet", "test.npy",
                                   "test_index.parquet", "folds.csv", "manifest.parquet")}
    np.save(paths["train.npy"], images(y))
    np.save(paths["test.npy"], images(rng.integers(0, 4, n_test)))
    pd.DataFrame({"id": ids, "row": range(n_train)}).to_parquet(paths["train_index.parquet"])
    pd.DataFrame({"id": test_ids, "row": range(n_test)}).to_parquet(paths["test_index.parquet"])
    pd.DataFrame({"id": ids, "fold": np.arange(n_train) % 5}).to_csv(paths["folds.csv"],
                                                                       index=False)
    pd.DataFrame({"id": ids + test_ids, "target": [str(v) for v in y] + [None] * n_test}
                 ).to_parquet(paths["manifest.parquet"])
    return paths


AUGMENT = {"transform": {"__class_fullname__": "Compose", "transforms": [
    {"__class_fullname__": "HorizontalFlip", "p": 0.5},
    {"__class_fullname__": "Affine", "scale": [0.9, 1.1], "rotate": [-10, 10], "p": 0.7}]}}
NO_OP_AUGMENT = {"transform": {"__class_fullname__": "Compose", "transforms": []}}
"""An empty pipeline sends plain epochs through the per-image DataLoader: the loader podium
used before whole-batch gathering, kept here as that change's baseline."""


def fold_run(inputs: dict[str, Path], out: Path, backbone: str, batch: int, epochs: int,
             threads: int, precision: str, channels_last: bool,
             augment: dict | None = None) -> dict:
    """One real fold (fold 0 of 5) through train_fold, timed by its own summary."""
    spec = TaskSpec(task="multiclass", target="label", classes=("0", "1", "2", "3"),
                    metric="accuracy", id_column="id")
    settings = TrainSettings(backbone=backbone, epochs=epochs, batch_size=batch, lr=1e-3,
                             tta=["identity", "hflip"], precision=precision,
                             channels_last=channels_last, augment=augment)
    outputs = FoldOutputs(*(out / n for n in ("model.pt", "oof.parquet", "history.csv",
                                              "metrics.json")))
    start = time.perf_counter()
    summary = train_fold(settings, spec, 0, inputs["train.npy"], inputs["train_index.parquet"],
                         inputs["folds.csv"], inputs["manifest.parquet"], outputs,
                         threads=threads)
    history = pd.read_csv(outputs.history)
    workers = max(0, threads - 1) if summary["device"] == "cuda" else 0
    return {"precision": summary["precision"], "channels_last": summary["channels_last"],
            "device": summary["device"], "threads": threads,
            "loader": "whole batches" if augment is None else
                      f"per-image DataLoader, {workers} workers",
            "epochs": epochs, "n_train": summary["n_train"],
            "fit_seconds": round(summary["fit_seconds"], 2),
            "train_images_per_s_incl_validation": round(summary["train_images_per_second"], 1),
            "epoch_seconds": [round(float(v), 2) for v in history["seconds"]],
            # the first epoch of a process also pays CUDA start-up, lazy kernel loading and
            # cuDNN autotuning; later epochs are the steady state
            "steady_epoch_seconds": round(float(history["seconds"].iloc[1:].median()), 3),
            "steady_train_images_per_s": round(
                summary["n_train"] / float(history["seconds"].iloc[1:].median()), 1),
            "oof_predict_seconds_tta2": round(summary["predict_seconds"], 2),
            "wall_seconds": round(time.perf_counter() - start, 2),
            "valid_accuracy": round(summary["best_valid_score"], 4)}


PIN_CHILD = """
import json, os, sys
from podium.train.devices import pin_gpu
with pin_gpu(sys.argv[1]) as devices:
    import torch
    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    print(json.dumps({"pinned": devices, "env": os.environ.get("CUDA_VISIBLE_DEVICES"),
                      "torch_sees": torch.cuda.device_count(), "name": name}))
"""


def pinning() -> dict:
    """What a training job gets on this machine: NVML count, then a real pin in a child."""
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    with tempfile.TemporaryDirectory() as locks:
        child = subprocess.run([sys.executable, "-c", PIN_CHILD, locks], env=env,
                               capture_output=True, text=True, check=False, timeout=120)
    result = {"nvml_gpu_count": visible_gpu_count(), "default_lock_dir": str(default_lock_dir()),
              "child_returncode": child.returncode}
    if child.returncode == 0:
        result |= json.loads(child.stdout.strip().splitlines()[-1])
    else:
        result["child_stderr"] = child.stderr[-2000:]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per mode")
    parser.add_argument("--fold-images", type=int, default=8192)
    parser.add_argument("--fold-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=min(8, os.cpu_count() or 1))
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (tests the script)")
    parser.add_argument("--skip-steps", action="store_true", help="folds and pinning only")
    parser.add_argument("--out", type=Path, default=OUT / "train_gpu.json")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    torch.backends.cudnn.benchmark = True
    if args.smoke or not cuda:
        cases = [("resnet10t", 32, 16)]
        modes = [m for m in MODES if m in (BASELINE, "bf16")]
        fold = {"backbone": "resnet10t", "batch": 32, "epochs": 2}
        if args.smoke:
            args.steps, args.fold_images, args.fold_size = 2, 200, 32
    else:
        cases = [("resnet50", 224, 128), ("efficientnet_b0", 224, 128),
                 ("convnext_tiny", 224, 128), ("resnet18", 128, 256)]
        modes = list(MODES)
        fold = {"backbone": "resnet34", "batch": 128, "epochs": 3}
    report: dict = {"benchmark": "train_gpu", "machine": machine()}
    print(json.dumps(report["machine"]), flush=True)

    steps = []
    for backbone, size, batch in [] if args.skip_steps else cases:
        for mode in modes:
            steps.append(step_throughput(backbone, size, batch, mode, args.steps))
            print(json.dumps(steps[-1]), flush=True)
    report["training_steps"] = steps
    report["speedup_vs_fp32"] = {
        f"{b}@{s}": {r["mode"]: round(r["images_per_s"] / base, 2)
                     for r in steps if (r["backbone"], r["size"]) == (b, s)}
        for b, s, _ in ([] if args.skip_steps else cases)
        for base in [next(r["images_per_s"] for r in steps
                          if (r["backbone"], r["size"], r["mode"]) == (b, s, BASELINE))]}

    with tempfile.TemporaryDirectory() as tmp:
        inputs = synthetic_fold_inputs(Path(tmp), args.fold_images, args.fold_images // 8,
                                       args.fold_size)
        runs = {"podium_default": (args.threads, "auto", True, None),
                "fp32_nchw": (args.threads, "fp32", False, None),
                "per_image_dataloader": (args.threads, "auto", True, NO_OP_AUGMENT),
                "augmenting": (args.threads, "auto", True, AUGMENT)}
        if cuda:
            runs["augmenting_0_workers"] = (1, "auto", True, AUGMENT)
        report["folds"] = {"backbone": fold["backbone"], "size": args.fold_size,
                           "batch": fold["batch"]}
        # warm-up: the process's first fold pays CUDA and library start-up for everyone
        fold_run(inputs, Path(tmp) / "warm_up", fold["backbone"], fold["batch"], 1,
                 args.threads, "auto", True)
        for name, (threads, precision, channels_last, augment) in runs.items():
            report["folds"][name] = fold_run(inputs, Path(tmp) / name, fold["backbone"],
                                             fold["batch"], fold["epochs"], threads, precision,
                                             channels_last, augment)
            print(name, json.dumps(report["folds"][name]), flush=True)
    report["pinning"] = pinning()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
