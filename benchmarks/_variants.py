"""Variants, precisions, targets and model construction shared by the throughput benchmark modules."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from baseline_resnet import RESNET56_PARAMS, resnet56  # noqa: E402

# name -> (horesnet block or None for the hand-written baseline, depth, reference variant for ratios)
VARIANTS = {
    "baseline56": (None, 56, None),
    "euler56": ("euler", 56, "baseline56"),
    "midpoint56": ("midpoint", 56, "euler56"),
    "rk4_56": ("rk4", 56, "euler56"),
    "euler92": ("euler", 92, None),
    "rk8_92": ("rk8", 92, "euler92"),
}
# name -> (autocast dtype or None, channels_last)
PRECISIONS = {"fp32": (None, False), "bf16cl": (torch.bfloat16, True)}
# Targets: train-step-time ratio and memory ratios (saved activations, peak memory) against the reference.
STEP_TARGET = {"euler56": 1.05, "midpoint56": 1.05, "rk4_56": 1.05, "rk8_92": 1.05}
MEM_TARGET = 1.10
NUM_CLASSES = 10
MB = 1 / 2**20


# ----------------------------------------------------------------------------------------------- models


def make_model(variant: str) -> torch.nn.Module:
    from horesnet.models.factory import build_model  # imported for every variant (equal RSS footprint)

    block, depth, _ = VARIANTS[variant]
    if block is None:
        model = resnet56(NUM_CLASSES)
        n = sum(p.numel() for p in model.parameters())
        assert n == RESNET56_PARAMS, f"baseline ResNet-56 has {n:,} parameters, expected {RESNET56_PARAMS:,}"
        return model
    return build_model(block=block, depth=depth, num_classes=NUM_CLASSES)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)

