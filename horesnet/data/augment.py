"""Batched augmentation and normalisation as tensor ops on the training device (no per-image Python).

``random_crop_flip`` is the CIFAR augmentation of He et al. 2015, Sec. 4.2: pad 4 pixels with zeros, take a random
32x32 crop, flip horizontally with probability 1/2 -- done for a whole uint8 batch with two gathers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop_flip(x: torch.Tensor, padding: int = 4, flip: bool = True,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crops (zero padding ``padding``) and horizontal flips of a (B, C, H, W) batch.

    Two gathers: rows ``dy + i``, then columns ``dx + j`` (or ``dx + W-1-j`` for a flipped image), so the flip
    costs nothing extra.
    """
    b, c, h, w = x.shape
    dev = x.device
    if padding:
        x = F.pad(x, (padding, padding, padding, padding))
    span = 2 * padding + 1
    dy = torch.randint(0, span, (b, 1), generator=generator, device=dev)
    dx = torch.randint(0, span, (b, 1), generator=generator, device=dev)
    cols = torch.arange(w, device=dev).expand(b, w)
    if flip:
        mirrored = torch.rand(b, 1, generator=generator, device=dev) < 0.5
        cols = torch.where(mirrored, w - 1 - cols, cols)
    if padding:
        rows = (dy + torch.arange(h, device=dev)).view(b, 1, h, 1).expand(b, c, h, x.shape[3])
        x = x.gather(2, rows)
    if padding or flip:
        x = x.gather(3, (dx * (padding > 0) + cols).view(b, 1, 1, w).expand(b, c, h, w))
    return x


def normalise(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float32, per-channel (x/255 - mean) / std."""
    mean = mean.to(x.device).view(1, -1, 1, 1)
    std = std.to(x.device).view(1, -1, 1, 1)
    return (x.float().div_(255.0) - mean).div_(std)
