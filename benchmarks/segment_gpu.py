"""Segmentation on a CUDA card: mixed precision and channels_last against plain fp32, same run.

Why: podium trains segmentation models in bf16 autocast with channels_last on a GPU by default
(``precision: auto``, ``channels_last: true``), as it does classifiers (see train_gpu.py). This
measures what that buys for smp decoders at segmentation sizes and checks the CUDA paths of
``podium.tasks.segment`` end to end, in three parts:

1. Training steps (forward, ``bce_dice`` loss, backward, AdamW) of podium's segmenters
   (``build_segmenter``: an smp decoder on a timm encoder) on uint8 batches and 0/1 masks
   already on the card, in three modes: fp32 NCHW (the baseline: what a plain PyTorch loop
   does), bf16 channels_last (podium's default) and fp16 channels_last with loss scaling.
   Images/s, ms/step, peak memory and the first step's time (cuDNN autotuning) per mode.
2. Whole folds through ``train_segment_fold`` (the rule's code: packed memory-mapped arrays,
   random crops through the DataLoader, validation Dice every epoch, OOF prediction) on
   synthetic ellipses: podium's default against fp32 NCHW. Numbers come from the fold's own
   metrics.json and history.csv.
3. Tiled inference (``predict_tiled``, overlapping tiles blended with a Hann window) on large
   images against one whole-image forward, in bf16 channels_last, with the default fold's
   trained model (random weights if that fold did not run): images/s, peak memory, and how far
   tiled probabilities are from whole-image ones. A 1x1-conv model, whose output depends on
   each pixel alone, must come out the same tiled or not: that checks the blending itself.

Parts run in the order 1, 2, 3; the JSON is rewritten to ``--out`` (default
benchmarks/out/segment_gpu.json) after every measurement and progress lines go to stderr, so
a run cut short keeps what it measured. On a GPU no new measurement starts once a share of
``--budget-s`` has passed (steps 45 %, folds 75 %, tiles 90 %); skipped ones are listed.
Without a GPU it runs a small CPU version (``--smoke`` shrinks everything further), so the
script itself is tested here.

    python benchmarks/segment_gpu.py [--steps 20] [--fold-images 2048] [--budget-s 120] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from torch import nn
from train_gpu import machine, sync  # benchmarks/ is the script's own folder on sys.path

from podium.metrics.masks import mean_dice
from podium.tasks.segment.fit import (
    SegmentFoldOutputs,
    SegmentSettings,
    load_segment_model,
    train_segment_fold,
)
from podium.tasks.segment.losses import build_segmentation_loss
from podium.tasks.segment.models import build_segmenter
from podium.tasks.segment.tiles import predict_tiled
from podium.train.runtime import Runtime

OUT = Path(__file__).resolve().parent / "out"
MODES = {  # name: (autocast dtype, channels_last)
    "fp32": (None, False),
    "bf16_channels_last": (torch.bfloat16, True),
    "fp16_channels_last": (torch.float16, True),
}
BASELINE, DEFAULT = "fp32", "bf16_channels_last"
WARM_UP_STEPS = 5
START = time.perf_counter()


def elapsed() -> float:
    return time.perf_counter() - START


def progress(*parts: object) -> None:
    """A progress line on stderr, flushed, so a run cut short still shows where it got."""
    print(f"[segment_gpu {elapsed():6.1f}s]", *parts, file=sys.stderr, flush=True)


def reset_peak() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_gib() -> dict:
    if not torch.cuda.is_available():
        return {}
    return {"peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)}


def free_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def ellipse_images(n: int, size: int, seed: int, object_scale: int = 128,
                   empty_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """``n`` noisy, shaded RGB images (N x S x S x 3 uint8) with bright filled ellipses, and
    their 0/1 masks (N x S x S uint8). Ellipses are sized for ``object_scale`` pixels (the
    look of podium's shapes demo at that size), and larger images get proportionally more of
    them, so a model trained at ``object_scale`` finds the same objects in large images."""
    rng = np.random.default_rng(seed)
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    masks = np.zeros((n, size, size), dtype=np.uint8)
    ramp = np.linspace(-0.5, 0.5, size, dtype=np.float32)
    blocks = max(1, round((size / object_scale) ** 2))
    for i in range(n):
        angle = rng.uniform(0.0, 2.0 * math.pi)
        image = (rng.uniform(30.0, 70.0) + rng.uniform(0.0, 40.0)
                 * (math.cos(angle) * ramp[None, :] + math.sin(angle) * ramp[:, None]))
        count = 0 if rng.random() < empty_fraction else int(rng.integers(blocks, 4 * blocks + 1))
        for _ in range(count):
            mask = np.zeros((size, size), dtype=np.uint8)
            axes = np.maximum(2, np.rint(rng.uniform(0.07, 0.2, 2) * object_scale)).astype(int)
            centre = np.rint(rng.uniform(0.05, 0.95, 2) * size).astype(int)
            cv2.ellipse(mask, (int(centre[0]), int(centre[1])), (int(axes[0]), int(axes[1])),
                        rng.uniform(0.0, 180.0), 0, 360, 1, thickness=-1)
            image[mask > 0] += rng.uniform(60.0, 130.0)
            masks[i] |= mask
        noisy = image[:, :, None] + rng.normal(0.0, rng.uniform(4.0, 12.0), (size, size, 3))
        images[i] = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    return images, masks


def step_throughput(arch: str, encoder: str, size: int, batch: int, mode: str,
                    steps: int) -> dict:
    """Images/s of segmentation training steps in one precision/memory-format mode (median of
    timed steps after warm-up, which also lets cuDNN pick its kernels: the first step's time
    is reported apart, as that is what autotuning costs once per shape)."""
    amp_dtype, channels_last = MODES[mode]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    runtime = Runtime(device, amp_dtype, {}, channels_last)
    torch.manual_seed(0)
    build_start = time.perf_counter()
    model = runtime.model(build_segmenter(arch, encoder, 1, 3, False, key=f"bench.{arch}"))
    build_seconds = time.perf_counter() - build_start
    loss_fn = build_segmentation_loss("bce_dice", 1, key=f"bench.{arch}.loss").to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(enabled=amp_dtype == torch.float16)
    images = torch.randint(0, 256, (batch, size, size, 3), dtype=torch.uint8, device=device)
    masks = torch.randint(0, 2, (batch, size, size), dtype=torch.uint8, device=device)
    targets = masks.unsqueeze(1).gt(0).float()  # as the segment plug-in's trainer unpacks them
    reset_peak()
    model.train()
    timings = []
    for _ in range(steps + WARM_UP_STEPS):
        sync()
        start = time.perf_counter()
        with runtime.autocast():
            loss = loss_fn(model(runtime.batch(images)), targets)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        sync()
        timings.append(time.perf_counter() - start)
    median = float(np.median(timings[WARM_UP_STEPS:]))
    out = {"arch": arch, "encoder": encoder, "size": size, "batch": batch, "mode": mode,
           "steps": steps, "median_step_ms": round(median * 1000, 2),
           "images_per_s": round(batch / median, 1),
           "first_step_s": round(timings[0], 3), "build_seconds": round(build_seconds, 2),
           "loss_finite": bool(torch.isfinite(loss).item())} | peak_gib()
    del model, optimizer, images, masks, targets
    free_memory()
    return out


def fold_inputs(root: Path, n_images: int, size: int, seed: int = 0) -> dict[str, Path]:
    """The packed arrays and tables a segmentation fold reads, on synthetic ellipses."""
    images, masks = ellipse_images(n_images, size, seed, object_scale=size)
    ids = [f"im{i}" for i in range(n_images)]
    paths = {n: root / n for n in ("train.npy", "masks.npy", "train_index.parquet",
                                   "folds.csv")}
    np.save(paths["train.npy"], images)
    np.save(paths["masks.npy"], masks)
    pd.DataFrame({"id": ids, "row": range(n_images)}).to_parquet(paths["train_index.parquet"])
    pd.DataFrame({"id": ids, "fold": np.arange(n_images) % 5}).to_csv(paths["folds.csv"],
                                                                        index=False)
    return paths


def fold_run(inputs: dict[str, Path], out: Path, fold: dict, threads: int, precision: str,
             channels_last: bool) -> dict:
    """One real fold (fold 0 of 5) through train_segment_fold, timed by its own metrics.json.
    Keyword arguments only: the signature may gain optional ones."""
    settings = SegmentSettings(arch=fold["arch"], encoder=fold["encoder"],
                               epochs=fold["epochs"], batch_size=fold["batch"], lr=fold["lr"],
                               weight_decay=1e-4,  # as measured (the schema's default is 0.05)
                               warmup_epochs=fold["warmup_epochs"], crop=fold["crop"],
                               precision=precision, channels_last=channels_last)
    outputs = SegmentFoldOutputs(*(out / n for n in ("model.pt", "oof_probs.npy",
                                                     "oof_index.parquet", "history.csv",
                                                     "metrics.json")))
    start = time.perf_counter()
    train_segment_fold(settings=settings, fold=0, train_array=inputs["train.npy"],
                       train_index=inputs["train_index.parquet"],
                       masks_array=inputs["masks.npy"], folds_csv=inputs["folds.csv"],
                       outputs=outputs, threads=threads, name="bench")
    wall = time.perf_counter() - start
    metrics = json.loads(outputs.metrics.read_text())
    history = pd.read_csv(outputs.history)
    seconds = [float(v) for v in history["seconds"]]
    # the first epoch also pays lazy kernel loading and cuDNN autotuning for this mode's
    # shapes (train crops and whole validation images); later epochs are the steady state
    steady = float(np.median(seconds[1:])) if len(seconds) > 1 else None
    return {"precision": metrics["precision"], "channels_last": metrics["channels_last"],
            "device": metrics["device"], "threads": threads, "epochs": len(seconds),
            "n_train": metrics["n_train"], "n_valid": metrics["n_valid"],
            "fit_seconds": round(metrics["fit_seconds"], 2),
            "train_images_per_second": round(metrics["train_images_per_second"], 1),
            "epoch_seconds": [round(v, 2) for v in seconds],
            "steady_epoch_seconds": None if steady is None else round(steady, 3),
            "steady_train_images_per_s": (None if steady is None
                                          else round(metrics["n_train"] / steady, 1)),
            "predict_seconds": round(metrics["predict_seconds"], 2),
            "wall_seconds": round(wall, 2),
            "best_valid_dice": round(metrics["best_valid_dice"], 4),
            "oof_dice": round(metrics["oof_dice_tta"], 4),
            "weights": str(outputs.weights)}


def _timed(fn, images: torch.Tensor, repeats: int) -> tuple[torch.Tensor, float, dict]:
    """``fn(images)`` once untimed (warm-up, autotuning), then ``repeats`` timed runs: the
    output, the median seconds and the peak memory of the timed runs."""
    fn(images)
    sync()
    free_memory()
    reset_peak()
    timings = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        out = fn(images)
        sync()
        timings.append(time.perf_counter() - start)
    return out, float(np.median(timings)), peak_gib()


def tiled_inference(weights: Path | None, arch: str, encoder: str, n_images: int, size: int,
                    tile: int, tile_batch: int, repeats: int, object_scale: int) -> dict:
    """predict_tiled against one whole-image forward, in podium's default mode."""
    amp_dtype, channels_last = MODES[DEFAULT]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    runtime = Runtime(device, amp_dtype, {}, channels_last)
    if weights is not None:
        model, _ = load_segment_model(weights, runtime, "bench")
    else:
        torch.manual_seed(0)
        model = runtime.model(build_segmenter(arch, encoder, 1, 3, False, key="bench.tiles"))
    model.eval()
    images_np, masks = ellipse_images(n_images, size, seed=1, object_scale=object_scale,
                                      empty_fraction=0.0)
    images = runtime.batch(torch.from_numpy(images_np))

    def plain(batch: torch.Tensor) -> torch.Tensor:  # as podium.tasks.segment.fit predicts
        with torch.no_grad(), runtime.autocast():
            return model(batch).float()

    def plain_channels_last(batch: torch.Tensor) -> torch.Tensor:
        return plain(batch.contiguous(memory_format=torch.channels_last))

    ways = {"whole_image": plain,
            "tiled": lambda x: predict_tiled(plain, x, tile, tile_batch),
            # tiles are stacked NCHW whatever the images' layout; this variant hands them to
            # the channels_last model in its own layout, to show what that layout change costs
            "tiled_tiles_channels_last": lambda x: predict_tiled(plain_channels_last, x, tile,
                                                                 tile_batch)}
    results: dict = {"model": f"{arch}/{encoder}",
                     "weights": "default fold's model.pt" if weights is not None
                                else "random init", "mode": DEFAULT, "images": n_images,
                     "size": size, "tile": tile, "tile_batch": tile_batch, "repeats": repeats}
    probs = {}
    for name, fn in ways.items():
        logits, seconds, peak = _timed(fn, images, repeats)
        probs[name] = torch.sigmoid(logits[:, 0]).cpu()
        results[name] = {"seconds": round(seconds, 4),
                         "images_per_s": round(n_images / seconds, 2)} | peak
        progress("tiles", name, json.dumps(results[name]))
    whole, tiled = probs["whole_image"], probs["tiled"]
    results["speedup_tiled_vs_whole"] = round(
        results["tiled"]["images_per_s"] / results["whole_image"]["images_per_s"], 3)
    difference = (tiled - whole).abs()
    results["max_abs_prob_diff_tiled_vs_whole"] = round(float(difference.max()), 5)
    results["mean_abs_prob_diff_tiled_vs_whole"] = round(float(difference.mean()), 6)
    results["mask_disagreement_fraction"] = round(
        float(((tiled > 0.5) != (whole > 0.5)).float().mean()), 6)
    results["max_abs_prob_diff_tile_layouts"] = round(
        float((probs["tiled_tiles_channels_last"] - tiled).abs().max()), 5)
    results["dice_whole_image"] = round(mean_dice(whole.numpy() > 0.5, masks), 4)
    results["dice_tiled"] = round(mean_dice(tiled.numpy() > 0.5, masks), 4)
    # a 1x1 conv sees one pixel: blending identical values must give them back exactly
    torch.manual_seed(0)
    pointwise = nn.Conv2d(3, 1, 1).to(device)
    with torch.no_grad():
        exact = torch.sigmoid(pointwise(images))
        blended = torch.sigmoid(predict_tiled(pointwise, images, tile, tile_batch))
    results["pointwise_model_max_abs_prob_diff"] = float((blended - exact).abs().max())
    return results


def write(report: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per mode")
    parser.add_argument("--fold-images", type=int, default=2048)
    parser.add_argument("--fold-size", type=int, default=128)
    parser.add_argument("--fold-crop", type=int, default=96, help="train crop of the folds")
    parser.add_argument("--fold-epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=min(8, os.cpu_count() or 1),
                        help="torch CPU threads, for the steps as for the folds")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="start nothing new after this share of it has passed (default: "
                             "120 on a GPU, none on the CPU)")
    parser.add_argument("--parts", default="steps,folds,tiles",
                        help="comma-separated subset of steps, folds, tiles")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (tests the script)")
    parser.add_argument("--out", type=Path, default=OUT / "segment_gpu.json")
    args = parser.parse_args()
    parts = {p.strip() for p in args.parts.split(",") if p.strip()}
    cuda = torch.cuda.is_available()
    torch.backends.cudnn.benchmark = True
    torch.set_num_threads(args.threads)  # what the folds' trainer sets, from the first step
    budget = args.budget_s if args.budget_s is not None else (120.0 if cuda and not args.smoke
                                                              else math.inf)
    if args.smoke or not cuda:
        cases = [("unet", "resnet10t", 64, 4), ("fpn", "efficientnet_b0", 64, 4)]
        modes = [BASELINE, DEFAULT]  # fp16 needs a CUDA card
        fold = {"arch": "unet", "encoder": "resnet10t", "batch": 8, "epochs": 2, "crop": 64,
                "lr": 3e-3, "warmup_epochs": 0.0}
        tiles = {"arch": "unet", "encoder": "resnet10t", "n_images": 2, "size": 256,
                 "tile": 128, "tile_batch": 8, "repeats": 1}
        if args.smoke:
            args.steps, args.fold_images, args.fold_size = 2, 24, 64
            fold |= {"epochs": 1, "crop": 32}
            tiles |= {"size": 128, "tile": 64}
    else:
        cases = [("unet", "resnet34", 256, 32), ("fpn", "efficientnet_b0", 256, 32),
                 ("unet", "resnet34", 512, 8)]
        modes = list(MODES)
        fold = {"arch": "unet", "encoder": "resnet34", "batch": 32, "epochs": args.fold_epochs,
                "crop": args.fold_crop,
                "lr": 3e-3, "warmup_epochs": 0.5}
        tiles = {"arch": "unet", "encoder": "resnet34", "n_images": 8, "size": 1024,
                 "tile": 256, "tile_batch": 32, "repeats": 3}
    report: dict = {"benchmark": "segment_gpu", "smoke": args.smoke, "machine": machine(),
                    "budget_s": None if math.isinf(budget) else budget, "skipped": []}
    progress(json.dumps(report["machine"]))

    def allowed(what: str, share: float) -> bool:
        if elapsed() < share * budget:
            return True
        report["skipped"].append(what)
        progress("skipped (time budget):", what)
        return False

    steps: list[dict] = []
    report["training_steps"] = steps
    report["speedup_vs_fp32"] = {}
    for arch, encoder, size, batch in cases if "steps" in parts else []:
        key = f"{arch}/{encoder}@{size}"
        for mode in modes:
            if not allowed(f"steps {key} {mode}", 0.45):
                continue
            try:
                steps.append(step_throughput(arch, encoder, size, batch, mode, args.steps))
            except Exception as err:  # one failing mode must not lose the rest of the run
                steps.append({"arch": arch, "encoder": encoder, "size": size, "batch": batch,
                              "mode": mode, "error": f"{type(err).__name__}: {err}"[:2000]})
                free_memory()
            progress("steps", json.dumps(steps[-1]))
            rows = [r for r in steps if f"{r['arch']}/{r['encoder']}@{r['size']}" == key
                    and "images_per_s" in r]
            base = next((r["images_per_s"] for r in rows if r["mode"] == BASELINE), None)
            if base:
                report["speedup_vs_fp32"][key] = {r["mode"]: round(r["images_per_s"] / base, 2)
                                                  for r in rows}
            write(report, args.out)

    weights = None
    with tempfile.TemporaryDirectory() as tmp:
        if "folds" in parts:
            inputs = fold_inputs(Path(tmp), args.fold_images, args.fold_size)
            report["folds"] = {k: fold[k] for k in ("arch", "encoder", "batch", "epochs",
                                                    "crop", "lr")}
            report["folds"] |= {"size": args.fold_size, "images": args.fold_images}
            progress("fold inputs written:", args.fold_images, "images at", args.fold_size)
            runs = {"podium_default": ("auto", True), "fp32_nchw": ("fp32", False)}
            for name, (precision, channels_last) in runs.items():
                if not allowed(f"fold {name}", 0.75):
                    continue
                try:
                    result = fold_run(inputs, Path(tmp) / name, fold, args.threads, precision,
                                      channels_last)
                except Exception as err:
                    result = {"error": f"{type(err).__name__}: {err}"[:2000]}
                    free_memory()
                if name == "podium_default" and "weights" in result:
                    weights = Path(result["weights"])
                result.pop("weights", None)
                report["folds"][name] = result
                progress("fold", name, json.dumps(result))
                write(report, args.out)
            done = [report["folds"].get(n, {}) for n in runs]
            if all("fit_seconds" in r for r in done):
                report["folds"]["speedup_default_vs_fp32"] = {
                    "fit_seconds": round(done[1]["fit_seconds"] / done[0]["fit_seconds"], 2),
                    "steady_epoch": (None if done[0]["steady_epoch_seconds"] is None else round(
                        done[1]["steady_epoch_seconds"] / done[0]["steady_epoch_seconds"], 2))}

        if "tiles" in parts and allowed("tiles", 0.9):
            try:
                report["tiled_inference"] = tiled_inference(
                    weights, tiles["arch"], tiles["encoder"], tiles["n_images"], tiles["size"],
                    tiles["tile"], tiles["tile_batch"], tiles["repeats"],
                    object_scale=args.fold_size)
            except Exception as err:
                report["tiled_inference"] = {"error": f"{type(err).__name__}: {err}"[:2000]}
            progress("tiles done")
    report["total_seconds"] = round(elapsed(), 1)
    write(report, args.out)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
