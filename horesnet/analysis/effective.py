"""Effective paths (Veit et al. 2016, Sec. 5): where does the gradient really flow?

The forward pass is normal; in the backward pass the gradient is routed along exactly one sampled path of length
k (every other edge is cut, via the blocks' ``route`` switch). Each batch element carries its own path, so one
backward pass measures many paths. The mean norm of the input gradient per length, times the number of paths of
that length, gives the total gradient contributed by paths of each length.
"""

from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F

from .common import EvalData, evaluating
from .paths import PathSampler


def _masks(routes_per_sample: list[dict], like: torch.Tensor) -> dict:
    blocks = {id(b): b for routes in routes_per_sample for b in routes}
    masks = {}
    for key, block in blocks.items():
        edges = {e for routes in routes_per_sample for e in routes.get(block, ())}
        per_edge = {}
        for e in edges:
            m = torch.tensor([1.0 if e in routes.get(block, ()) else 0.0 for routes in routes_per_sample],
                             dtype=like.dtype, device=like.device)
            per_edge[e] = m.view(-1, *([1] * (like.dim() - 1)))
        masks[key] = (block, per_edge)
    return masks


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
                masks = _masks(routes, x)
                try:
                    for block, per_edge in masks.values():
                        block.route = per_edge
                    loss = F.cross_entropy(model(x), labels[idx], reduction="sum")
                    (grad,) = torch.autograd.grad(loss, x)
                finally:
                    for block, _ in masks.values():
                        block.route = None
                norms += grad.flatten(1).norm(dim=1).tolist()
            mean = sum(norms) / len(norms)
            std = math.sqrt(sum((v - mean) ** 2 for v in norms) / max(1, len(norms) - 1))
            records.append({"length": k, "paths": counts[k], "samples": len(norms), "mean_grad_norm": mean,
                            "std_grad_norm": std, "total_grad": mean * counts[k]})
    total = sum(r["total_grad"] for r in records) or 1.0
    for r in records:
        r["share_of_total"] = r["total_grad"] / total
    return records
