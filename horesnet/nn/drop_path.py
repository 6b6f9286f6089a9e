"""Stochastic depth for scheme blocks (Huang et al. 2016, "Deep Networks with Stochastic Depth", Sec. 3).

In training, increment k_i of a block is dropped for each sample with probability p_i (k_i = 0 for that sample
wherever it is used, the meaning of a lesion) and otherwise rescaled by 1 / (1 - p_i), so that a linear network's
expected output is the undropped one; in evaluation nothing changes. It acts through the block-hook interface
(docs/design.md, "Block hooks"); ``build_model(drop_path_rate=p)`` gives the l-th of L increments p_l = p * l / L.
"""

from __future__ import annotations

import torch

from .hooks import OUTPUT, BlockHook


class DropPath(BlockHook):
    """Per-sample drop of each increment ``i`` with probability ``rates[i]`` while the block is training."""

    def __init__(self, rates):
        self.rates = tuple(float(r) for r in rates)
        self._scaled: dict[int, tuple] = {}

    def _scale(self, k, i):
        """k_i times its per-sample keep mask / (1 - p_i), drawn once per forward pass."""
        kept, scaled = self._scaled.get(i, (None, None))
        if kept is not k[i]:
            p = self.rates[i]
            keep = torch.rand((k[i].shape[0],) + (1,) * (k[i].dim() - 1), device=k[i].device) >= p
            scaled = k[i] * (keep.to(k[i].dtype) / (1.0 - p))
            self._scaled[i] = (k[i], scaled)
        return scaled

    def __call__(self, block, target, base, k):
        if not block.training or not any(self.rates):
            return base, k
        out = [kj if kj is None or self.rates[j] == 0 else self._scale(k, j) for j, kj in enumerate(k)]
        if target == OUTPUT:
            self._scaled.clear()  # the forward pass of this block is over
        return base, out
