"""Loader + augmentation throughput vs a ResNet-56 training step, interleaved in the same run.

    python -m benchmarks.data_pipeline [--data synthetic|fashion_mnist|cifar10] [--batch 128] [--quick]

Both are timed one batch (one step) at a time with the harness (``benchmarks/_harness.py``), alternating, over
rotated rounds, disturbed steps left out. Target: the pipeline (index a batch of uint8 tensors, pad-4 random crop
+ flip, normalise) delivers at least 20x the images/s of the training step. Writes
``benchmarks/results/data_pipeline-<device>.json``.
"""

from __future__ import annotations

import argparse

import torch

from . import _harness as h
from .throughput import Bench

TARGET = 20.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.data_pipeline", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="synthetic", help="a registered dataset (default synthetic, no files)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per round")
    ap.add_argument("--rounds", type=int, default=3)
    h.add_common_args(ap)
    args = ap.parse_args(argv)
    if args.quick:
        args.batch, args.steps, args.rounds = 16, 2, 1
    from horesnet.data import ArrayDataModule, list_datasets, normalise, random_crop_flip

    if args.data not in list_datasets():
        ap.error(f"--data: unknown {args.data}; choose from {', '.join(list_datasets())}")
    torch.set_num_threads(args.threads)
    device = h.pick_device(args.device)
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
    steppers = {"pipeline": h.Stepper(pipeline, device), "train": h.Stepper(bench.train, device)}
    res = h.compare(steppers, args.rounds, args.steps, 1, args.quick)
    data, train = res["pipeline"], res["train"]
    ratio = train["median_s"] / data["median_s"]
    report = {"benchmark": "data_pipeline", **h.environment(device), "data": args.data, "batch": args.batch,
              "steps": args.steps, "rounds": args.rounds, "pipeline": data, "train": train,
              "pipeline_img_s": args.batch / data["median_s"], "resnet56_train_img_s": args.batch / train["median_s"],
              "ratio": ratio, "ratio_paired": h.paired_ratio(train["rounds"], data["rounds"]),
              "target_ratio_min": TARGET, "passes": ratio >= TARGET}
    h.save_report(report, args.out, args.quick)
    print(f"pipeline {report['pipeline_img_s']:.0f} img/s, ResNet-56 training {report['resnet56_train_img_s']:.1f} "
          f"img/s: ratio {ratio:.1f} (target >= {TARGET:g})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
