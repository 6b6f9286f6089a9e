"""Loader + augmentation throughput vs a ResNet-56 training step, interleaved in the same run.

    python -m benchmarks.data_pipeline [--data synthetic|fashion_mnist|cifar10] [--batch 128] [--quick]

Both are timed one batch (one step) at a time with the harness (``benchmarks/_harness.py``), alternating, over
rotated rounds, disturbed steps left out. Target: the pipeline (index a batch of uint8 tensors, pad-4 random crop
+ flip, normalise) delivers at least 20x the images/s of the training step. Writes
``benchmarks/results/data_pipeline-<device>.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ._harness import (
    RESULTS,
    Stepper,
    add_common_args,
    environment,
    interleave,
    paired_ratio,
    pick_device,
    summarise,
    write_json,
)
from .throughput import Bench

TARGET = 20.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.data_pipeline", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="synthetic", help="a registered dataset (default synthetic, no files)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per round")
    ap.add_argument("--rounds", type=int, default=3)
    add_common_args(ap)
    args = ap.parse_args(argv)
    if args.quick:
        args.batch, args.steps, args.rounds = 16, 2, 1
    from horesnet.data import ArrayDataModule, list_datasets, normalise, random_crop_flip

    if args.data not in list_datasets():
        ap.error(f"--data: unknown {args.data}; choose from {', '.join(list_datasets())}")
    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    synthetic = {"train_size": 20 * args.batch, "test_size": 64, "num_classes": 10, "channels": 3, "image_size": 32}
    dm = ArrayDataModule(args.data, batch_size=args.batch, val_size=64, synthetic=synthetic)
    dm.setup()
    g = torch.Generator(device=device).manual_seed(0)
    batches = iter(())

    def pipeline():
        nonlocal batches
        try:
            x, y = next(batches)
        except StopIteration:
            batches = iter(dm.train_dataloader())
            x, y = next(batches)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        return normalise(random_crop_flip(x, 4, True, g), dm.mean, dm.std)

    bench = Bench(("euler56", "fp32", "eager"), args.batch, device)  # 3-channel ResNet-56, as the CIFAR recipe
    steppers = {"pipeline": Stepper(pipeline, device),
                "train": Stepper(bench.train, device)}
    rounds = interleave(steppers, args.rounds, args.steps, 1, args.steps // 2, 0.25, 3.0 if args.quick else 30.0)
    data, train = summarise(rounds["pipeline"]), summarise(rounds["train"])
    ratio = train["median_s"] / data["median_s"]
    report = {"benchmark": "data_pipeline", **environment(device), "data": args.data, "batch": args.batch,
              "steps": args.steps, "rounds": args.rounds, "pipeline": {**data, "rounds": rounds["pipeline"]},
              "train": {**train, "rounds": rounds["train"]},
              "pipeline_img_s": args.batch / data["median_s"], "resnet56_train_img_s": args.batch / train["median_s"],
              "ratio": ratio, "ratio_paired": paired_ratio(rounds["train"], rounds["pipeline"]),
              "target_ratio_min": TARGET, "passes": ratio >= TARGET}
    tag = device.type + ("-quick" if args.quick else "")
    write_json(report, Path(args.out) if args.out else RESULTS / f"data_pipeline-{tag}.json")
    print(f"pipeline {report['pipeline_img_s']:.0f} img/s, ResNet-56 training {report['resnet56_train_img_s']:.1f} "
          f"img/s: ratio {ratio:.1f} (target >= {TARGET:g})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
