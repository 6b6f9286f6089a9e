"""Reference helpers shared by the analysis tests (test_paths, test_lesion, test_effective_paths,
test_layer_studies): tiny networks and data, path polynomials worked out by hand, brute-force chains of a Butcher
tableau, forward passes written out by hand. Written independently of horesnet.analysis.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from horesnet import build_model
from horesnet.nn import SchemeBlock

DT = torch.float64
EULER = [1, 1]
MIDPOINT = [1, 1, 1]
RK4 = [1, 4, 3, 2, 1]


# --------------------------------------------------------------------------------------------------------------
# Helpers (references, written independently of horesnet.analysis)
# --------------------------------------------------------------------------------------------------------------

def tiny(block: str = "euler", depth: int | None = 8, **kw) -> nn.Module:
    return build_model(depth=depth, block=block, width=0.25, **kw).eval()


def batches(n: int = 6, size: int = 8, per_batch: int = 3, classes: int = 10, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, size, size, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    return [(x[i:i + per_batch], y[i:i + per_batch]) for i in range(0, n, per_batch)]


def pmul(*polys) -> list:
    out = [1]
    for p in polys:
        res = [0] * (len(out) + len(p) - 1)
        for i, a in enumerate(out):
            for j, b in enumerate(p):
                res[i + j] += a * b
        out = res
    return out


def ppow(p, k: int) -> list:
    return pmul(*([p] * k)) if k else [1]


def psubst(p, u) -> list:
    """p(u(z)) for ascending coefficient lists."""
    out = [0]
    for k, c in enumerate(p):
        term = [c * v for v in ppow(u, k)]
        out = [(out[i] if i < len(out) else 0) + (term[i] if i < len(term) else 0)
               for i in range(max(len(out), len(term)))]
    return out


def trim(p) -> list:
    p = list(p)
    while len(p) > 1 and p[-1] == 0:
        p.pop()
    return p


def chains(tab) -> list[tuple[int, ...]]:
    """Every increasing chain i1 < ... < im with A[i(t+1), i(t)] != 0 and b[im] != 0, by brute force."""
    s, out = tab.increments, []
    for r in range(1, s + 1):
        for combo in itertools.combinations(range(s), r):
            if tab.b[combo[-1]] != 0 and all(tab.A[j][i] != 0 for i, j in zip(combo, combo[1:], strict=False)):
                out.append(combo)
    return out


def chain_edges(chain) -> frozenset:
    if not chain:
        return frozenset({("x", "y")})
    return frozenset([("x", chain[0]), *zip(chain, chain[1:], strict=False), (chain[-1], "y")])


def unit_by_address(model, address: str):
    return dict((a, u) for a, u, _ in model.units())[address]


def owner_of(model, address: str) -> tuple[SchemeBlock, int]:
    """The (possibly inner) block holding the unit at ``address`` and its 0-based increment, parsed by hand."""
    parts = address.split(".")
    block = model.stages[int(parts[0][1:]) - 1][int(parts[1][1:]) - 1]
    incs = [int(p[1:]) - 1 for p in parts[2:]]
    for inc in incs[:-1]:
        block = block.unit(inc).block
    return block, incs[-1]


def zero_last_norm(unit) -> None:
    with torch.no_grad():
        unit.norms[-1].weight.zero_()
        unit.norms[-1].bias.zero_()


def randomise_norms(model, seed: int = 1) -> None:
    """Non-trivial eval-mode BN statistics and affine parameters, so BN is not (almost) the identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(0.3 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + 1.5 * torch.rand(c, generator=g))
                m.weight.copy_(0.5 + torch.rand(c, generator=g))
                m.bias.copy_(0.2 * torch.randn(c, generator=g))


def evaluate(forward, data) -> tuple[float, float]:
    """(error %, mean cross-entropy) of ``forward`` over ``data``, written out by hand."""
    correct = total = 0
    loss = 0.0
    with torch.no_grad():
        for x, y in data:
            logits = forward(x)
            correct += int((logits.argmax(1) == y).sum())
            loss += float(F.cross_entropy(logits, y, reduction="sum"))
            total += len(y)
    return 100.0 * (1 - correct / total), loss / total


def forward_without(model, removed_blocks):
    """The network with the given blocks replaced by post(shortcut(x)) -- every increment deleted."""
    removed = {id(b) for b in removed_blocks}

    def forward(x):
        h = model.forward_stem(x)
        for _, block, _ in model.blocks():
            h = block.post(block.shortcut(h).clone()) if id(block) in removed else block(h)
        return model.forward_head(model.forward_final(h))
    return forward


def chi_square(counts: dict, categories: int, n: int) -> float:
    expected = n / categories
    return sum((c - expected) ** 2 / expected for c in counts.values()) + (categories - len(counts)) * expected


def loose_chi2_limit(dof: int) -> float:
    """Mean + 5 standard deviations of a chi-square with ``dof`` degrees of freedom (no scipy needed)."""
    return dof + 5 * math.sqrt(2 * dof) + 5
