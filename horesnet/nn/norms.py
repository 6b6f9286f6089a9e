"""Normalisation layers of units, shortcuts, stems and heads."""

from __future__ import annotations

import math

from torch import nn

from ..errors import check_choice

NORMS = ("batch", "group")


def make_norm(norm: str, channels: int) -> nn.Module:
    """BatchNorm2d, or GroupNorm with up to 32 groups of at least two channels (for tied/ODE units)."""
    check_choice("norm", norm, NORMS)
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    groups = math.gcd(channels, 32)
    while groups > 1 and channels // groups < 2:
        groups //= 2
    return nn.GroupNorm(groups, channels)
