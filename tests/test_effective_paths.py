"""Tests of the effective-paths study (docs/design.md, "Analysis"): routed gradients of a linear residual network equal
products of its linear maps, path by path.

Expected values come from products of the linear maps of a linear residual network, brute-force enumeration of
the chains of a Butcher tableau and path counts worked out by hand. Networks are tiny, so the file runs in seconds
on a CPU.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from horesnet import get_scheme, list_schemes
from horesnet.analysis import GradientRoute, effective_paths
from horesnet.models import BlockSpec
from horesnet.nn import NestedUnit, SchemeBlock, hooked

from ._analysis_helpers import (
    DT,
    EULER,
    RK4,
    batches,
    chain_edges,
    chains,
    pmul,
    ppow,
    psubst,
    tiny,
    unit_by_address,
    zero_last_norm,
)

# --------------------------------------------------------------------------------------------------------------
# Effective paths: routed gradients of a linear residual network equal products of its linear maps
# --------------------------------------------------------------------------------------------------------------

C = 3


def linear_unit(gen: torch.Generator, scale: float = 0.6) -> nn.Conv2d:
    conv = nn.Conv2d(C, C, 1, bias=False, dtype=DT)
    with torch.no_grad():
        conv.weight.copy_(scale * torch.randn(C, C, 1, 1, generator=gen, dtype=DT))
    return conv


def linear_block(name: str, h: float, gen: torch.Generator, inner: str | None = None) -> SchemeBlock:
    tab = get_scheme(name)
    if inner is None:
        units = [linear_unit(gen) for _ in range(tab.increments)]
    else:
        units = [NestedUnit(linear_block(inner, h, gen)) for _ in range(tab.increments)]
        for u in units:
            u.block.shortcut = nn.Identity()
    return SchemeBlock(tab, units, nn.Identity(), None, step=h)


def matrix(conv: nn.Conv2d) -> torch.Tensor:
    return conv.weight[:, :, 0, 0].detach()


def chain_matrix(block: SchemeBlock, chain, inner_chains=None) -> torch.Tensor:
    """h b_im W_im (h A_im,i(m-1)) W_i(m-1) ... W_i1 (nested units: their own inner chain matrix)."""
    h, A, b = block.step, block.scheme.A, block.scheme.b
    if not chain:
        return torch.eye(C, dtype=DT)

    def unit_matrix(i):
        unit = block.unit(i)
        if isinstance(unit, NestedUnit):
            return chain_matrix(unit.block, inner_chains[i])
        return matrix(unit)
    m = unit_matrix(chain[0])
    for prev, nxt in zip(chain, chain[1:], strict=False):
        m = unit_matrix(nxt) @ (h * A[nxt][prev] * m)
    return h * b[chain[-1]] * m


def apply_transpose(m: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Per pixel: M^T g (the input gradient of <g, M x>)."""
    return torch.einsum("cd,ncij->ndij", m, g)


def routed_grad(blocks, routes_per_block, x, g) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    with hooked({blk: GradientRoute(route) for blk, route in routes_per_block.items()}):
        h = x
        for blk in blocks:
            h = blk(h)
        (grad,) = torch.autograd.grad((h * g).sum(), x)
    return grad


@pytest.mark.parametrize("name", list_schemes("rk"))
def test_route_selects_exactly_one_path_of_a_linear_block(name):
    """Every path of the block at once, one per batch element (per-sample masks): each gradient is that path's
    product of linear maps, and the paths' gradients add up to the unrouted one."""
    gen = torch.Generator().manual_seed(0)
    block = linear_block(name, 0.7, gen)
    paths = [()] + chains(block.scheme)
    x = torch.randn(1, C, 3, 3, generator=gen, dtype=DT).expand(len(paths), -1, -1, -1)
    g = torch.randn(1, C, 3, 3, generator=gen, dtype=DT).expand(len(paths), -1, -1, -1)
    edges = [chain_edges(p) for p in paths]
    route = {e: torch.tensor([1.0 if e in es else 0.0 for es in edges], dtype=DT).view(-1, 1, 1, 1)
             for e in set().union(*edges)}
    grad = routed_grad([block], {block: route}, x, g)
    want = torch.einsum("pcd,pcij->pdij", torch.stack([chain_matrix(block, p) for p in paths]), g)
    torch.testing.assert_close(grad, want, rtol=1e-12, atol=1e-12)
    for n in range(min(len(paths), 4)):  # a route of plain True edges selects the same path alone
        one = routed_grad([block], {block: {e: True for e in edges[n]}}, x[:1], g[:1])
        torch.testing.assert_close(one, apply_transpose(chain_matrix(block, paths[n]), g[:1]), rtol=1e-12, atol=1e-12)
    # the paths partition the Jacobian: their gradients add up to the unrouted one
    xx = x[:1].clone().requires_grad_(True)
    (full,) = torch.autograd.grad((block(xx) * g[:1]).sum(), xx)
    torch.testing.assert_close(grad.sum(0, keepdim=True), full, rtol=1e-10, atol=1e-10)


def test_route_through_nested_units():
    gen = torch.Generator().manual_seed(1)
    block = linear_block("rk4", 0.5, gen, inner="midpoint")
    x = torch.randn(1, C, 2, 2, generator=gen, dtype=DT)
    g = torch.randn(1, C, 2, 2, generator=gen, dtype=DT)
    inner = chains(get_scheme("midpoint"))
    assert sorted(inner) == [(0, 1), (1,)]
    n_paths = 0
    for outer in chains(block.scheme):
        for picks in itertools.product(inner, repeat=len(outer)):
            inner_chains = dict(zip(outer, picks, strict=True))
            routes = {block: {e: True for e in chain_edges(outer)}}
            for i, c in inner_chains.items():
                routes[block.unit(i).block] = {e: True for e in chain_edges(c)}
            grad = routed_grad([block], routes, x, g)
            want = apply_transpose(chain_matrix(block, outer, inner_chains), g)
            torch.testing.assert_close(grad, want, rtol=1e-12, atol=1e-12)
            n_paths += 1
    assert n_paths == sum(psubst(RK4, [0, 1, 1])) - 1  # every non-skip path of the nested block


def test_route_with_per_sample_masks():
    """Two batch elements, two different paths through a stack of two blocks, in one backward pass."""
    gen = torch.Generator().manual_seed(2)
    blocks = [linear_block("rk4", 0.8, gen), linear_block("midpoint", 0.8, gen)]
    x = torch.randn(2, C, 3, 3, generator=gen, dtype=DT)
    g = torch.randn(2, C, 3, 3, generator=gen, dtype=DT)
    paths = [((1, 2, 3), ()), ((2,), (0, 1))]  # sample 0: rk4 chain k2-k3-k4, then skip; sample 1: k3, then both
    assert paths[0][0] in chains(blocks[0].scheme) and paths[1][1] in chains(blocks[1].scheme)
    routes = {}
    for bi, blk in enumerate(blocks):
        edges = [chain_edges(p[bi]) for p in paths]
        route = {}
        for e in set().union(*edges):
            route[e] = torch.tensor([1.0 if e in es else 0.0 for es in edges], dtype=DT).view(2, 1, 1, 1)
        routes[blk] = route
    grad = routed_grad(blocks, routes, x, g)
    for n, p in enumerate(paths):
        m = chain_matrix(blocks[1], p[1]) @ chain_matrix(blocks[0], p[0])
        torch.testing.assert_close(grad[n:n + 1], apply_transpose(m, g[n:n + 1]), rtol=1e-12, atol=1e-12)
        assert grad[n].abs().max() > 1e-3
    assert all(b.hook is None for b in blocks)


class LinearNet(nn.Module):
    """A linear residual network exposing the introspection API the analysis tools use."""

    def __init__(self, blocks, classes: int = 4, seed: int = 0):
        super().__init__()
        self.body = nn.ModuleList(blocks)
        self.fc = nn.Linear(C, classes, dtype=DT)
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(classes, C, generator=torch.Generator().manual_seed(seed), dtype=DT))

    def blocks(self):
        for i, b in enumerate(self.body, 1):
            yield f"s1.b{i}", b, BlockSpec(b.scheme.name, b.scheme.increments, entry=(i == 1))

    def forward_stem(self, x):
        return x

    def forward_final(self, x):
        return x

    def forward_head(self, x):
        return self.fc(x.mean((2, 3)))

    def forward(self, x):
        for b in self.body:
            x = b(x)
        return self.forward_head(x)


def output_grad(net: LinearNet, x, y) -> torch.Tensor:
    """dL/d(last block output) for L = summed cross-entropy: fc^T (softmax - onehot) / (H W) at every pixel."""
    with torch.no_grad():
        p = net(x).softmax(1)
        v = (p - F.one_hot(y, p.shape[1]).to(DT)) @ net.fc.weight
    hw = x.shape[2] * x.shape[3]
    return (v / hw)[:, :, None, None].expand_as(x)


def test_effective_paths_of_a_linear_euler_net_with_shared_weights():
    n, h = 4, 0.5
    gen = torch.Generator().manual_seed(3)
    first = linear_block("euler", h, gen)
    blocks = [first] + [linear_block("euler", h, gen) for _ in range(n - 1)]
    with torch.no_grad():
        for b in blocks[1:]:
            b.load_state_dict(first.state_dict())
    net = LinearNet(blocks)
    x = torch.randn(1, C, 4, 4, generator=gen, dtype=DT)
    y = torch.tensor([2])
    records = effective_paths(net, [(x, y)], samples_per_length=5, seed=0, batch_size=3)
    G = output_grad(net, x, y)
    W = matrix(first.units[0])
    assert [r["length"] for r in records] == list(range(n + 1))
    for r in records:
        k = r["length"]
        want = float(apply_transpose(torch.linalg.matrix_power(h * W, k), G).norm())
        assert r["paths"] == math.comb(n, k)
        assert r["samples"] == 5
        assert r["mean_grad_norm"] == pytest.approx(want, rel=1e-9)
        assert r["std_grad_norm"] == pytest.approx(0.0, abs=1e-9 * want)
        assert r["total_grad"] == pytest.approx(want * math.comb(n, k), rel=1e-9)
    assert sum(r["share_of_total"] for r in records) == pytest.approx(1.0)
    assert all(b.hook is None for b in blocks)


def test_effective_paths_of_a_linear_rk4_net_unique_paths():
    """Length 0 (all skips) and the longest length (every unit) are single paths: compare with their maps."""
    gen = torch.Generator().manual_seed(4)
    blocks = [linear_block("rk4", 0.6, gen), linear_block("midpoint", 0.6, gen)]
    net = LinearNet(blocks)
    x = torch.randn(3, C, 2, 2, generator=gen, dtype=DT)
    y = torch.tensor([0, 3, 1])
    records = effective_paths(net, [(x, y)], samples_per_length=3, lengths=[0, 6])
    assert [(r["length"], r["paths"]) for r in records] == [(0, 1), (6, 1)]
    G = output_grad(net, x, y)
    full = chain_matrix(blocks[1], (0, 1)) @ chain_matrix(blocks[0], (0, 1, 2, 3))
    for r, m in zip(records, [torch.eye(C, dtype=DT), full], strict=True):
        norms = [float(apply_transpose(m, G[i:i + 1]).norm()) for i in range(3)]
        assert r["mean_grad_norm"] == pytest.approx(sum(norms) / 3, rel=1e-9)


def test_effective_paths_on_a_tiny_model():
    model = tiny("rk4", 32)
    data = batches(n=4, per_batch=2)
    records = effective_paths(model, data, samples_per_length=2, batch_size=2)
    stage = pmul(EULER, RK4)
    counts = ppow(stage, 3)
    assert [r["length"] for r in records] == list(range(len(counts)))
    assert [r["paths"] for r in records] == counts
    for r in records:
        assert r["samples"] == 2
        assert math.isfinite(r["mean_grad_norm"]) and r["mean_grad_norm"] > 0
        assert math.isfinite(r["std_grad_norm"]) and r["std_grad_norm"] >= 0
        assert r["total_grad"] == pytest.approx(r["mean_grad_norm"] * r["paths"])
    assert sum(r["share_of_total"] for r in records) == pytest.approx(1.0)
    assert model.training is False
    assert all(b.hook is None for b in model.modules() if isinstance(b, SchemeBlock))


def test_paths_through_zeroed_units_carry_no_gradient():
    model = tiny("euler", 8)  # three blocks: the one path of length 3 runs through every unit
    zero_last_norm(unit_by_address(model, "s2.b1.u1"))
    data = batches(n=4, per_batch=4)
    recs = {r["length"]: r for r in effective_paths(model, data, samples_per_length=4, lengths=[0, 3])}
    assert recs[3]["mean_grad_norm"] == 0.0
    assert recs[0]["mean_grad_norm"] > 0
    for _, unit, _ in model.units():
        zero_last_norm(unit)
    recs = effective_paths(model, data, samples_per_length=4)
    assert [r["length"] for r in recs] == [0, 1, 2, 3]
    assert recs[0]["mean_grad_norm"] > 0
    assert all(r["mean_grad_norm"] == 0.0 for r in recs[1:])
    assert recs[0]["share_of_total"] == pytest.approx(1.0)
