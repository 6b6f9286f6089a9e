"""Residual functions F ("units").

``basic`` = two 3x3 convs, ``bottleneck`` = 1x1, 3x3, 1x1 with expansion 4 (He et al. 2015, Fig. 5).
The five activation placements are those of He et al. 2016, Fig. 4 (a)-(e).
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import nn

from ..errors import check_choice

UNITS = ("basic", "bottleneck")
PLACEMENTS = ("original", "bn_after_add", "relu_before_add", "relu_only_preact", "full_preact")
NORMS = ("batch", "group")
EXPANSION = {"basic": 1, "bottleneck": 4}
CONVS_PER_UNIT = {"basic": 2, "bottleneck": 3}


def make_norm(norm: str, channels: int) -> nn.Module:
    """BatchNorm2d, or GroupNorm with up to 32 groups of at least two channels (for tied/ODE units)."""
    check_choice("norm", norm, NORMS)
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    groups = math.gcd(channels, 32)
    while groups > 1 and channels // groups < 2:
        groups //= 2
    return nn.GroupNorm(groups, channels)


def post_activation(placement: str, norm: str, channels: int) -> nn.Module:
    """What follows the addition: ReLU for (a), BN-ReLU for (b), nothing for (c)-(e)."""
    if placement == "original":
        return nn.ReLU(inplace=True)
    if placement == "bn_after_add":
        return nn.Sequential(make_norm(norm, channels), nn.ReLU(inplace=True))
    return nn.Identity()


class Unit(nn.Module):
    """One residual function F: a short conv stack with BN/ReLU placed per He et al. 2016, Fig. 4.

    ``stride_in_3x3`` moves a bottleneck's stride from its first 1x1 conv (the paper) to the 3x3 conv
    (torchvision's "ResNet V1.5"). Layers are ``convs[i]`` / ``norms[i]`` so analysis can hook them.
    """

    def __init__(
        self,
        kind: str,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        placement: str = "original",
        norm: str = "batch",
        stride_in_3x3: bool = False,
    ):
        super().__init__()
        check_choice("unit", kind, UNITS)
        check_choice("placement", placement, PLACEMENTS)
        self.kind, self.placement = kind, placement
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        if kind == "basic":
            specs = [(3, in_channels, out_channels, stride), (3, out_channels, out_channels, 1)]
        else:
            mid = out_channels // EXPANSION["bottleneck"]
            s1, s3 = (1, stride) if stride_in_3x3 else (stride, 1)
            specs = [(1, in_channels, mid, s1), (3, mid, mid, s3), (1, mid, out_channels, 1)]
        self.convs = nn.ModuleList(
            nn.Conv2d(i, o, k, stride=s, padding=k // 2, bias=False) for k, i, o, s in specs
        )
        if placement == "full_preact":  # BN-ReLU-conv: the norm sees each conv's input
            norm_channels = [i for _, i, _, _ in specs]
        elif placement == "bn_after_add":  # the last BN moves after the addition (post_activation)
            norm_channels = [o for _, _, o, _ in specs[:-1]]
        else:
            norm_channels = [o for _, _, o, _ in specs]
        self.norms = nn.ModuleList(make_norm(norm, c) for c in norm_channels)

    @property
    def downsampling(self) -> bool:
        return self.stride != 1 or self.in_channels != self.out_channels

    def responses(self) -> list[tuple[nn.Conv2d, nn.Module]]:
        """``(conv, module)`` for each conv: ``module``'s output is the conv's response after BN and before the
        nonlinearity (He et al. 2015, Fig. 7) -- the conv itself where no BN follows it inside the unit."""
        n = len(self.convs)
        if self.placement == "full_preact":
            after = [self.norms[i + 1] if i + 1 < n else self.convs[i] for i in range(n)]
        else:
            after = [self.norms[i] if i < len(self.norms) else self.convs[i] for i in range(n)]
        return list(zip(self.convs, after, strict=True))

    def forward(self, x):
        last = len(self.convs) - 1
        p = self.placement
        for i, conv in enumerate(self.convs):
            if p == "full_preact":
                x = conv(F.relu(self.norms[i](x)))
            elif p == "relu_only_preact":
                x = self.norms[i](conv(F.relu(x)))
            else:
                x = conv(x)
                if i < len(self.norms):
                    x = self.norms[i](x)
                if i < last or p == "relu_before_add":
                    x = F.relu(x, inplace=True)
        return x

    def extra_repr(self) -> str:
        return f"{self.kind}, {self.in_channels}->{self.out_channels}, stride={self.stride}, {self.placement}"
