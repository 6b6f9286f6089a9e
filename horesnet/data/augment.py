"""Batched augmentation and normalisation as tensor ops on the training device (no per-image Python).

``random_crop_flip`` is the CIFAR augmentation of He et al. 2015, Sec. 4.2: pad 4 pixels with zeros, take a random
32x32 crop, flip horizontally with probability 1/2 -- done for a whole uint8 batch with two gathers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop_flip(x: torch.Tensor, padding: int = 4, flip: bool = True,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crops (zero padding ``padding``) and horizontal flips of a (B, C, H, W) batch."""
    b, c, h, w = x.shape
    if padding:
        xp = F.pad(x, (padding, padding, padding, padding))
        dy = torch.randint(0, 2 * padding + 1, (b, 1), generator=generator, device=x.device)
        dx = torch.randint(0, 2 * padding + 1, (b, 1), generator=generator, device=x.device)
        rows = (dy + torch.arange(h, device=x.device)).view(b, 1, h, 1).expand(b, c, h, w + 2 * padding)
        x = xp.gather(2, rows)
        cols = (dx + torch.arange(w, device=x.device)).view(b, 1, 1, w).expand(b, c, h, w)
        x = x.gather(3, cols)
    if flip:
        mask = torch.rand(b, generator=generator, device=x.device) < 0.5
        x = torch.where(mask.view(b, 1, 1, 1), x.flip(3), x)
    return x


def normalise(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float32, per-channel (x/255 - mean) / std."""
    mean = mean.to(x.device).view(1, -1, 1, 1)
    std = std.to(x.device).view(1, -1, 1, 1)
    return (x.float().div_(255.0) - mean).div_(std)
