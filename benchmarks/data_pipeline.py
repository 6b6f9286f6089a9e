"""Loader + augmentation throughput vs ResNet-56 training throughput, measured in the same run.

    python benchmarks/data_pipeline.py [--data synthetic|fashion_mnist|cifar10] [--batches 200]

Target: the data pipeline (index a batch of uint8 tensors, pad-4 random crop + flip, normalise)
delivers at least 20x the images/s of a ResNet-56 training step (batch 128, fp32) on the same machine.
Writes benchmarks/results/data_pipeline-<device>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import torch.nn.functional as F

from horesnet import build_model
from horesnet.data import ArrayDataModule, normalise, random_crop_flip


def pipeline_rate(dm: ArrayDataModule, device: torch.device, batches: int) -> float:
    loader = dm.train_dataloader()
    g = torch.Generator(device=device).manual_seed(0)
    n, start, done = 0, time.perf_counter(), 0
    while done < batches:
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            x = normalise(random_crop_flip(x, 4, True, g), dm.mean, dm.std)
            n += len(y)
            done += 1
            if done >= batches:
                break
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - start)


def training_rate(device: torch.device, in_channels: int, steps: int = 5, batch: int = 128) -> float:
    model = build_model(block="euler", depth=56, in_channels=in_channels).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(batch, in_channels, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    times = []
    for i in range(steps + 1):
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i:  # first step is warm-up
            times.append(time.perf_counter() - t)
    return batch / sorted(times)[len(times) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="synthetic")
    ap.add_argument("--batches", type=int, default=200)
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    synthetic = {"train_size": 50000, "test_size": 1000, "num_classes": 10, "channels": 3, "image_size": 32}
    dm = ArrayDataModule(args.data, batch_size=128, val_size=5000, synthetic=synthetic)
    dm.setup()
    data_ips = pipeline_rate(dm, device, args.batches)
    train_ips = training_rate(device, dm.num_channels, args.steps)
    ratio = data_ips / train_ips
    result = {
        "benchmark": "data_pipeline", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": str(device), "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "data": args.data, "batch_size": 128, "batches": args.batches,
        "pipeline_images_per_sec": round(data_ips, 1), "resnet56_train_images_per_sec": round(train_ips, 1),
        "ratio": round(ratio, 1), "target_ratio": 20, "passes": ratio >= 20,
    }
    out = Path(__file__).parent / "results" / f"data_pipeline-{device.type}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
