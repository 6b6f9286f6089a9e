"""Effective paths (Veit et al. 2016, Sec. 5): where does the gradient really flow?

The forward pass is normal; in the backward pass the gradient is routed along exactly one sampled path of length
k (every other edge is cut, by a :class:`GradientRoute` block hook). Each batch element carries its own path, so one
backward pass measures many paths. The mean norm of the input gradient per length, times the number of paths of
that length, gives the total gradient contributed by paths of each length.
"""

from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F

from ..nn import BlockHook, hooked
from .common import EvalData, evaluating
from .paths import PathSampler


class _GradMask(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by a fixed (per-sample) mask."""

    @staticmethod
    def forward(ctx, t, mask):
        ctx.save_for_backward(mask)
        return t.view_as(t)

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return grad * mask, None


class GradientRoute(BlockHook):
    """A block hook that leaves the forward pass unchanged and, in the backward pass, keeps the gradient only on
    the edges of ``route``: ``("x", i)`` input into increment i, ``(j, i)`` k_j into increment i, ``(i, "y")``
    k_i into the output, ``("x", "y")`` the skip -- each mapped to ``True`` or to a per-sample 0/1 mask of shape
    (B, 1, ...) (one routed path per batch element). Every other edge is cut (detached)."""

    def __init__(self, route: dict):
        self.route = route

    def _gate(self, edge, t):
        keep = self.route.get(edge)
        if t is None or keep is True:
            return t
        return t.detach() if keep is None else _GradMask.apply(t, keep)

    def __call__(self, block, target, base, k):
        return self._gate(("x", target), base), [self._gate((j, target), kj) for j, kj in enumerate(k)]


def _routes(routes_per_sample: list[dict], like: torch.Tensor) -> dict:
    """``{block: GradientRoute}``: each edge a sample's path uses, with its per-sample 0/1 mask."""
    shape = (-1, *([1] * (like.dim() - 1)))
    hooks = {}
    for block in dict.fromkeys(b for routes in routes_per_sample for b in routes):
        uses = [routes.get(block, ()) for routes in routes_per_sample]
        hooks[block] = GradientRoute({e: torch.tensor([float(e in u) for u in uses], dtype=like.dtype,
                                                      device=like.device).view(shape) for e in set().union(*uses)})
    return hooks


def effective_paths(model, data, samples_per_length: int = 1000, seed: int = 0, lengths=None,
                    batch_size: int = 64) -> list[dict]:
    """Per path length k: mean/std input-gradient norm of single paths, path count, and their product."""
    data = EvalData.wrap(data)
    sampler = PathSampler(model)
    counts = sampler.counts
    wanted = lengths if lengths is not None else range(len(counts))
    lengths = [k for k in wanted if 0 <= k < len(counts) and counts[k]]
    images = torch.cat([x for x, _ in data.batches])
    labels = torch.cat([y for _, y in data.batches])
    rng = random.Random(seed)
    records, cursor = [], 0
    with evaluating(model), torch.enable_grad():
        for k in lengths:
            norms = []
            while len(norms) < samples_per_length:
                b = min(batch_size, samples_per_length - len(norms))
                idx = torch.arange(cursor, cursor + b) % len(labels)
                cursor += b
                x = images[idx].clone().requires_grad_(True)
                routes = [sampler.sample(k, rng) for _ in range(b)]
                with hooked(_routes(routes, x)):
                    loss = F.cross_entropy(model(x), labels[idx], reduction="sum")
                    (grad,) = torch.autograd.grad(loss, x)
                norms += grad.flatten(1).norm(dim=1).tolist()
            mean = sum(norms) / len(norms)
            std = math.sqrt(sum((v - mean) ** 2 for v in norms) / max(1, len(norms) - 1))
            records.append({"length": k, "paths": counts[k], "samples": len(norms), "mean_grad_norm": mean,
                            "std_grad_norm": std, "total_grad": mean * counts[k]})
    total = sum(r["total_grad"] for r in records) or 1.0
    for r in records:
        r["share_of_total"] = r["total_grad"] / total
    return records
