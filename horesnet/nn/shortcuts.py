"""Shortcut connections S(x) (He et al. 2015, Sec. 3.3 and Table 3).

``A``: identity, and where the shape changes, stride subsampling plus zero-padded channels (no parameters).
``B``: identity, and a 1x1 projection (conv + norm) where the shape changes.
``C``: a 1x1 projection on every block.  ``plain``: no shortcut at all (the paper's plain nets).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ..errors import check_choice
from .norms import make_norm

SHORTCUTS = ("A", "B", "C", "plain")


def normalise_shortcut(name: str) -> str:
    """Accept ``a``/``b``/``c`` as well as ``A``/``B``/``C``."""
    value = name.upper() if isinstance(name, str) and len(name) == 1 else name
    if value not in SHORTCUTS:
        check_choice("shortcut", name, SHORTCUTS)
    return value


class ZeroPadShortcut(nn.Module):
    """Option A: ``x[:, :, ::s, ::s]`` with ``out - in`` zero channels appended."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"option A cannot reduce channels ({in_channels} -> {out_channels})")
        self.extra, self.stride = out_channels - in_channels, stride

    def forward(self, x):
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra)) if self.extra else x

    def extra_repr(self) -> str:
        return f"stride={self.stride}, zero_channels={self.extra}"


class ProjectionShortcut(nn.Sequential):
    """Options B/C: 1x1 conv with stride, then a norm layer."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, norm: str = "batch"):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), make_norm(norm, out_channels)
        )


def make_shortcut(
    kind: str, in_channels: int, out_channels: int, stride: int, norm: str = "batch"
) -> nn.Module | None:
    """The shortcut S of one block; ``None`` for ``plain`` (no skip)."""
    kind = normalise_shortcut(kind)
    if kind == "plain":
        return None
    same_shape = stride == 1 and in_channels == out_channels
    if kind == "C" or (kind == "B" and not same_shape):
        return ProjectionShortcut(in_channels, out_channels, stride, norm)
    if same_shape:
        return nn.Identity()
    return ZeroPadShortcut(in_channels, out_channels, stride)
