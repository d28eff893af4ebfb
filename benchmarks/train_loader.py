"""Training input pipelines and training steps: podium's packed arrays against decoding the
image files every epoch (what most training scripts do), same run, same images.

Why: podium decodes, equalises and resizes every image once (preprocess) and trains from a
memory-mapped uint8 array; the usual glue script decodes each JPEG in the Dataset on every
epoch. Both sides here run the same albumentations pipeline and the same DataLoader (batch
64, shuffled), with 0 workers and with 1 worker process; the file side does only decode and
resize (no CLAHE), which favours it. Separately, training steps (forward, backward, AdamW
step) of the default models on random batches give images/s on this CPU, on 1 and 2 threads.
Images are the 256-px distinct bases of the cached planted set (see dedup_planted.py).
Prints JSON (and writes it to benchmarks/out/train_loader.json).

    python benchmarks/train_loader.py [--n 2000] [--size 128] [--repeats 3]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import albumentations as A
import cv2
import numpy as np
import torch
from dedup_planted import OUT, planted_set
from report import emit
from torch.utils.data import DataLoader, Dataset

from podium.preprocess.pack import pack_split
from podium.preprocess.transforms import PreprocessSettings
from podium.tasks.classify.models import build_classifier
from podium.train.data import PackedImages, load_packed, normalize


def augmentation() -> A.Compose:
    return A.Compose([A.HorizontalFlip(p=0.5),
                      A.Affine(scale=(0.9, 1.1), rotate=(-10, 10), p=0.7)])


class DecodeEveryEpoch(Dataset):
    """The usual Dataset: read and decode the JPEG, resize, augment, on every access."""

    def __init__(self, paths: list[str], size: int, augment: A.Compose) -> None:
        self.paths, self.size, self.augment = paths, size, augment

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = cv2.cvtColor(cv2.imread(self.paths[i], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        image = cv2.resize(image, (self.size, self.size), interpolation=cv2.INTER_AREA)
        image = self.augment(image=image)["image"]
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))), 0


def epoch_images_per_s(dataset: Dataset, workers: int, repeats: int) -> dict:
    """Images/s of full shuffled epochs through a DataLoader (best of ``repeats``), each
    batch turned into the float tensor the model gets."""
    loader = DataLoader(dataset, batch_size=64, shuffle=True, num_workers=workers,
                        generator=torch.Generator().manual_seed(0))
    seconds = []
    for _ in range(repeats + 1):  # the first epoch warms caches and starts workers
        start = time.perf_counter()
        for images, _ in loader:
            normalize(images)
        seconds.append(time.perf_counter() - start)
    best = min(seconds[1:])
    return {"seconds": round(best, 3), "images_per_s": round(len(dataset) / best, 1),
            "seconds_all_runs": [round(s, 3) for s in seconds[1:]]}


def training_step_images_per_s(backbone: str, size: int, threads: int, steps: int) -> dict:
    """Forward + backward + AdamW step on random 3-channel batches of 64 (CPU, fp32)."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_classifier(backbone, 10, 3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    images = torch.randn(64, 3, size, size)
    labels = torch.randint(0, 10, (64,))
    model.train()
    timings = []
    for step in range(steps + 2):  # two warm-up steps
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step >= 2:
            timings.append(time.perf_counter() - start)
    median = float(np.median(timings))
    return {"backbone": backbone, "size": size, "threads": threads, "batch": 64,
            "median_step_s": round(median, 4), "images_per_s": round(64 / median, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="images per epoch")
    parser.add_argument("--size", type=int, default=128, help="training size in pixels")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10, help="timed training steps")
    args = parser.parse_args()

    planted, _ = planted_set(20000, flips=False)
    bases = planted.files[planted.files["id"] == planted.files["source"]].head(args.n)
    manifest = bases[["id", "path", "height", "width", "channels"]].assign(split="train")
    paths = manifest["path"].tolist()
    for path in paths:  # page cache, so both sides time decoding, not the disk
        Path(path).read_bytes()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(dir=OUT) as tmp:
        start = time.perf_counter()
        pack_split(manifest, "train", PreprocessSettings(size=args.size, channels=3),
                   Path(tmp) / "train.npy", Path(tmp) / "train.parquet", threads=2)
        pack_seconds = time.perf_counter() - start
        packed = load_packed(Path(tmp) / "train.npy")
        rows = np.arange(len(packed))
        loaders = {}
        for workers in (0, 1):
            loaders[f"packed_{workers}_workers"] = epoch_images_per_s(
                PackedImages(packed, rows, np.zeros(len(rows)), augmentation()), workers,
                args.repeats)
            loaders[f"decode_files_{workers}_workers"] = epoch_images_per_s(
                DecodeEveryEpoch(paths, args.size, augmentation()), workers, args.repeats)
    steps = [training_step_images_per_s(backbone, size, threads, args.steps)
             for backbone, size in (("resnet10t", 32), ("regnetx_002", 32),
                                    ("resnet10t", args.size))
             for threads in (1, 2)]
    report = {
        "benchmark": "train_loader",
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
                   f"cuda available: {torch.cuda.is_available()}",
        "images": len(paths), "source_px": int(manifest["height"].iloc[0]), "size": args.size,
        "pack_seconds_2_threads": round(pack_seconds, 3),
        "loaders": loaders,
        "packed_vs_files": {w: round(loaders[f"packed_{w}_workers"]["images_per_s"]
                                     / loaders[f"decode_files_{w}_workers"]["images_per_s"], 2)
                            for w in (0, 1)},
        "training_steps_cpu": steps,
    }
    emit(report, OUT / "train_loader.json")


if __name__ == "__main__":
    main()
