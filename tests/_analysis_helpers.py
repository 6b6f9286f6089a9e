"""Reference helpers shared by the model, block and analysis tests: what the scheme names promise, CIFAR depths,
tiny networks and data, path polynomials worked out by hand, brute-force chains of a Butcher tableau, Runge-Kutta
steps and forward passes written out by hand. Written independently of horesnet.analysis and of the block's own
forward pass and hooks.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from horesnet import build_model, get_scheme
from horesnet.nn import NestedUnit, SchemeBlock

DT = torch.float64
EULER = [1, 1]
MIDPOINT = [1, 1, 1]
RK4 = [1, 4, 3, 2, 1]

# What each built-in name promises, from the literature (Butcher 2016, Sec. 23; Verner 1978): name -> (stages, order).
# Independent of the tableaux stored in the package.
PROMISED = {"euler": (1, 1), "midpoint": (2, 2), "heun": (2, 2), "ralston": (2, 2), "rk3": (3, 3),
            "heun3": (3, 3), "rk4": (4, 4), "rk4_38": (4, 4), "rk8": (14, 8)}
CONVS = {"basic": 2, "bottleneck": 3}  # convs per unit (He et al. 2015, Fig. 5)


# --------------------------------------------------------------------------------------------------------------
# Helpers (references, written independently of horesnet.analysis)
# --------------------------------------------------------------------------------------------------------------

def cifar_depth(n: int, unit: str = "basic") -> int:
    """He et al. 2015, Sec. 4.2: 6n+2 layers for basic units, 9n+2 for bottlenecks (n units per stage)."""
    return 3 * CONVS[unit] * n + 2


def smallest_depth(block: str, unit: str = "basic") -> int:
    """The CIFAR depth whose stages hold one Euler entry unit plus one block of ``block`` (an ODE block: one unit)."""
    return cifar_depth((1 if block == "ode" else get_scheme(block).units_per_step) + 1, unit)


def tiny(block: str = "euler", depth: int | None = 8, **kw) -> nn.Module:
    return build_model(depth=depth, block=block, width=0.25, **kw).eval()


def tiny_one_block(scheme: str, **kw) -> nn.Module:
    """The cheapest network holding one block of ``scheme``: stages [s+1, 1, 1] (the block is ``s1.b2``)."""
    return tiny(scheme, None, stages=[get_scheme(scheme).units_per_step + 1, 1, 1], **kw)


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


def rk_increments_by_hand(A, units, x, h, sx, zeroed=()) -> tuple[list, list]:
    """The inputs z_i and increments k_i of one explicit Runge-Kutta step (docs/design.md, "The block"):
    z_1 = x, z_i = S(x) + h sum_{j<i} A_ij k_j, k_i = F_i(z_i); increments in ``zeroed`` are k_i = 0 (a lesion:
    F_i is not run, z_i is None). ``sx`` is S(x), or 0 for a block without skip."""
    zs, ks = [], []
    for i, f in enumerate(units):
        if i in zeroed:
            zs.append(None)
            ks.append(0.0)
            continue
        z = x if i == 0 else sx + h * sum(A[i][j] * ks[j] for j in range(i))
        zs.append(z)
        ks.append(f(z))
    return zs, ks


def rk_step_by_hand(A, b, units, x, h, sx=None, zeroed=()):
    """k_1 = F_1(x); k_i = F_i(S(x) + h sum_j A_ij k_j); return S(x) + h sum_i b_i k_i (docs/design.md, "The block").
    ``sx=None`` means S = identity."""
    sx = x if sx is None else sx
    _, k = rk_increments_by_hand(A, units, x, h, sx, zeroed)
    return sx + h * sum(b[i] * k[i] for i in range(len(units)))


def _hand_units(block: SchemeBlock, zeroed: dict) -> list:
    """Block ``block``'s residual functions, a nested unit replaced by its inner increment written out by hand."""
    def inner(unit):
        if not isinstance(unit, NestedUnit):
            return unit
        ib = unit.block
        sx_of = (lambda z: ib.shortcut(z)) if ib.shortcut is not None else (lambda z: 0.0)

        def increment(z):
            _, k = rk_increments_by_hand(ib.scheme.A, _hand_units(ib, zeroed), z, ib.step, sx_of(z),
                                         zeroed.get(ib, ()))
            return ib.step * sum(w * k[i] for i, w in enumerate(ib.scheme.b))
        return increment
    return [inner(block.unit(i)) for i in range(block.scheme.increments)]


def block_increments_by_hand(block: SchemeBlock, x, zeroed: dict | None = None) -> tuple[list, list, torch.Tensor]:
    """(z_i, k_i, y) of a scheme block, from its units, shortcut, post, step and tableau only (not its forward pass
    or hooks). ``zeroed``: {block (outer or nested inner): increments (0-based) that are 0}."""
    zeroed = zeroed or {}
    sx = block.shortcut(x) if block.shortcut is not None else 0.0
    A, b, h = block.scheme.A, block.scheme.b, block.step
    zs, ks = rk_increments_by_hand(A, _hand_units(block, zeroed), x, h, sx, zeroed.get(block, ()))
    return zs, ks, block.post(sx + h * sum(b[i] * ks[i] for i in range(len(ks))))


def forward_by_hand(model, x, zeroed: dict | None = None) -> torch.Tensor:
    """The network's logits with every block computed by ``block_increments_by_hand``."""
    h = model.forward_stem(x)
    for _, block, _ in model.blocks():
        h = block_increments_by_hand(block, h, zeroed)[2]
    return model.forward_head(model.forward_final(h))


def evaluate(forward, data) -> tuple[float, float]:
    """(error as a fraction in [0, 1], mean cross-entropy) of ``forward`` over ``data``, written out by hand."""
    correct = total = 0
    loss = 0.0
    with torch.no_grad():
        for x, y in data:
            logits = forward(x)
            correct += int((logits.argmax(1) == y).sum())
            loss += float(F.cross_entropy(logits, y, reduction="sum"))
            total += len(y)
    return 1 - correct / total, loss / total


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
