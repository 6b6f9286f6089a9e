"""Tests of the path analysis (docs/design.md, "Analysis"): path counts, path polynomials and path sampling.

Expected values come from binomial coefficients and path polynomials worked out by hand (a classic RK4 block has
1 + 4z + 3z^2 + 2z^3 + z^4), brute-force enumeration of the chains of a Butcher tableau and the stability polynomial
R(hz) = 1 + hz b^T (I - hzA)^{-1} 1 computed with numpy. Networks are tiny (width 0.25, 8x8 images), so the file
runs in seconds on a CPU.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from torch import nn

from horesnet import ConfigError, build_model, get_scheme, list_schemes
from horesnet.analysis import PathSampler, block_paths, block_polynomial, path_lengths
from horesnet.nn import NestedUnit, SchemeBlock

from ._analysis_helpers import (
    EULER,
    MIDPOINT,
    RK4,
    chain_edges,
    chains,
    chi_square,
    loose_chi2_limit,
    pmul,
    ppow,
    psubst,
    tiny,
    trim,
)

# --------------------------------------------------------------------------------------------------------------
# Path counts
# --------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("depth, n", [(8, 3), (20, 9), (32, 15)])
def test_euler_path_counts_are_binomial(depth, n):
    counts = path_lengths(tiny("euler", depth))
    assert counts == [math.comb(n, k) for k in range(n + 1)]
    assert sum(counts) == 2 ** n


def test_single_block_polynomials():
    rk4 = tiny("rk4", 32)
    blocks = [b for _, b, _ in rk4.blocks()]
    assert block_polynomial(blocks[0]) == EULER  # the Euler entry block
    assert block_polynomial(blocks[1]) == RK4
    mid = tiny("midpoint", 20)  # 3 units per stage: euler entry + one midpoint block
    assert [s.scheme for _, _, s in mid.blocks()] == ["euler", "midpoint"] * 3
    assert block_polynomial(next(b for _, b, s in mid.blocks() if s.scheme == "midpoint")) == MIDPOINT
    assert path_lengths(mid) == ppow(pmul(EULER, MIDPOINT), 3)


def test_four_euler_blocks():
    assert path_lengths(tiny("euler", stages=[2, 1, 1])) == [1, 4, 6, 4, 1]


@pytest.mark.parametrize("depth", [32, 44, 56])
def test_euler_entry_plus_rk4_blocks_is_product_of_block_polynomials(depth):
    n = (depth - 2) // 6  # units per stage
    q, r = divmod(n - 1, 4)  # rk4 blocks and leftover Euler blocks after the Euler entry
    stage = pmul(EULER, *([RK4] * q), *([EULER] * r))
    expected = ppow(stage, 3)
    counts = path_lengths(tiny("rk4", depth))
    assert counts == expected
    assert len(counts) - 1 == 3 * n  # the longest path goes through every unit
    assert sum(counts) == (2 * 11 ** q * 2 ** r) ** 3  # product of per-block path totals (11 per rk4 block)


def test_nested_rk4_with_inner_midpoint():
    model = tiny("rk4", 56, inner="midpoint")  # 9 units per stage = euler entry + rk4[midpoint] (8 units)
    u = [0, 1, 1]  # an inner midpoint step without its skip: z + z^2
    block = psubst(RK4, u)
    assert block[:3] == [1, 4, 4 + 3]  # 1 + 4(z + z^2) + 3(z + z^2)^2 + ...
    nested = next(b for _, b, s in model.blocks() if s.inner == "midpoint")
    assert block_polynomial(nested) == block
    assert path_lengths(model) == ppow(pmul(EULER, block), 3)


@pytest.mark.parametrize("depth, n", [(8, 3), (14, 6)])
def test_plain_net_has_one_path_through_every_unit(depth, n):
    counts = path_lengths(tiny("euler", depth, shortcut="plain"))
    assert counts == [0] * n + [1]


@pytest.mark.parametrize("name", list_schemes("rk"))
def test_block_paths_match_brute_force_chains(name):
    tab = get_scheme(name)
    block = SchemeBlock(tab, [nn.Identity() for _ in range(tab.increments)], nn.Identity())
    ref_chains = chains(tab)
    expected = [1] + [0] * tab.increments
    for c in ref_chains:
        expected[len(c)] += 1
    assert trim(block_polynomial(block)) == trim(expected)
    paths = block_paths(block)
    assert sorted(p.length for p in paths) == sorted([0] + [len(c) for c in ref_chains])
    got_edges = []
    for p in paths:
        assert len(p.routes) == 1 and p.routes[0][0] is block
        got_edges.append(frozenset(p.routes[0][1]))
    assert sorted(map(sorted, map(lambda e: map(str, e), got_edges))) == \
        sorted(map(sorted, map(lambda e: map(str, e), [chain_edges(())] + [chain_edges(c) for c in ref_chains])))
    assert len(set(got_edges)) == len(got_edges)


def stability_coefficients(tab, h: float) -> list[float]:
    A, b = np.array(tab.A, dtype=float), np.array(tab.b, dtype=float)
    one = np.ones(tab.increments)
    return [1.0] + [h ** k * float(b @ np.linalg.matrix_power(A, k - 1) @ one) for k in range(1, tab.increments + 1)]


@pytest.mark.parametrize("name", list_schemes("rk"))
@pytest.mark.parametrize("h", [1.0, 0.5])
def test_weighted_block_polynomial_is_the_stability_polynomial(name, h):
    tab = get_scheme(name)
    block = SchemeBlock(tab, [nn.Identity() for _ in range(tab.increments)], nn.Identity(), step=h)
    got = np.array(block_polynomial(block, weighted=True), dtype=float)
    ref = np.array(stability_coefficients(tab, h))
    got = np.pad(got, (0, max(0, len(ref) - len(got))))
    assert len(got) == len(ref)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)
    # and R(hz) = 1 + hz b^T (I - hzA)^{-1} 1 evaluated directly, at a real and a complex z
    A, b = np.array(tab.A), np.array(tab.b)
    for z in (0.3, -0.7 + 0.4j):
        direct = 1 + h * z * b @ np.linalg.solve(np.eye(tab.increments) - h * z * A, np.ones(tab.increments))
        assert abs(np.polyval(got[::-1], z) - direct) < 1e-9


def test_weighted_rk4_is_taylor_of_exp():
    block = next(b for _, b, s in tiny("rk4", 32).blocks() if s.scheme == "rk4")
    np.testing.assert_allclose(block_polynomial(block, weighted=True), [1, 1, 1 / 2, 1 / 6, 1 / 24], rtol=1e-12)


def test_weighted_network_paths_with_step_and_nesting():
    h = 0.5
    rk4 = stability_coefficients(get_scheme("rk4"), h)  # coefficients of (hz)^k folded with h^k
    stage = np.convolve([1, h], rk4)  # Euler entry (1 + hz) times one rk4 block
    np.testing.assert_allclose(path_lengths(tiny("rk4", 32, step=h), weighted=True), np.convolve(np.convolve(
        stage, stage), stage), rtol=1e-12)
    # nested: each outer unit is an inner midpoint step without skip, weighted h z + h^2/2 z^2 ... = U(z)
    inner = [0.0, h, h * h * 0.5]  # chains {2}: h b2 z;  {1,2}: h b2 * h a21 z^2 (b2 = 1, a21 = 1/2)
    c = [float(v) for v in stability_coefficients(get_scheme("rk4"), 1.0)]  # b^T A^(k-1) 1
    outer = [1.0]
    for k in range(1, 5):
        term = [h ** k * c[k] * v for v in np.polynomial.polynomial.polypow(inner, k)]
        outer = np.polynomial.polynomial.polyadd(outer, term)
    stage = np.convolve([1, h], outer)
    model = tiny("rk4", 56, inner="midpoint", step=h)
    np.testing.assert_allclose(path_lengths(model, weighted=True),
                               np.convolve(np.convolve(stage, stage), stage), rtol=1e-12)


def test_weighted_euler_network_with_learnable_step():
    model = tiny("euler", 14, step=0.25, learn_step=True)
    np.testing.assert_allclose(path_lengths(model, weighted=True),
                               [math.comb(6, k) * 0.25 ** k for k in range(7)], rtol=1e-12)


def test_paths_reject_ode_blocks():
    with pytest.raises(ConfigError, match="ode"):
        path_lengths(build_model(depth=8, block="ode", width=0.25, norm="group"))


# --------------------------------------------------------------------------------------------------------------
# PathSampler
# --------------------------------------------------------------------------------------------------------------

def route_length(routes: dict, block: SchemeBlock, seen: set, skip_ok: bool = True) -> int:
    """Units on the path that ``routes`` selects through ``block``; asserts the edges form one valid chain."""
    assert block in routes, "a block on the path has no route"
    seen.add(block)
    edges = set(routes[block])
    A, b = block.scheme.A, block.scheme.b
    if ("x", "y") in edges:
        assert skip_ok and edges == {("x", "y")}, edges
        return 0
    starts = [e for e in edges if e[0] == "x"]
    assert len(starts) == 1, edges
    i, used, seq = starts[0][1], {starts[0]}, [starts[0][1]]
    while True:
        nxt = [e for e in edges if e[0] == i]
        assert len(nxt) == 1, edges
        used.add(nxt[0])
        if nxt[0][1] == "y":
            break
        j = nxt[0][1]
        assert j > i and A[j][i] != 0, edges
        i = j
        seq.append(j)
    assert used == edges and b[i] != 0, edges
    length = 0
    for i in seq:
        unit = block.unit(i)
        length += route_length(routes, unit.block, seen, skip_ok=False) if isinstance(unit, NestedUnit) else 1
    return length


@pytest.mark.parametrize("kw", [dict(block="euler", depth=14), dict(block="rk4", depth=32),
                                dict(block="rk4", depth=56, inner="midpoint"), dict(block="rk8", stages=[15, 1, 1])],
                         ids=["euler", "rk4", "rk4[midpoint]", "rk8"])
def test_sampled_paths_have_the_requested_length(kw):
    model = tiny(**kw)
    sampler = PathSampler(model)
    assert sampler.counts == path_lengths(model)
    outer = [b for _, b, _ in model.blocks()]
    rng = random.Random(0)
    lengths = sorted({0, 1, 2, 3, len(sampler.counts) // 2, len(sampler.counts) - 1})
    for k in lengths:
        for _ in range(5):
            routes = sampler.sample(k, rng)
            seen: set = set()
            assert sum(route_length(routes, b, seen) for b in outer) == k
            assert seen == set(routes), "routes name blocks that are not on the path"
    with pytest.raises(ConfigError):
        sampler.sample(len(sampler.counts), rng)


def path_key(routes: dict) -> frozenset:
    return frozenset((id(b), frozenset(e)) for b, e in routes.items())


@pytest.mark.parametrize("kw, k, per_category", [(dict(block="euler", depth=20), 1, 80),
                                                 (dict(block="rk4", depth=32), 1, 80),
                                                 (dict(block="rk4", depth=32), 2, 30)],
                         ids=["euler-len1", "rk4-len1", "rk4-len2"])
def test_paths_of_one_length_are_sampled_uniformly(kw, k, per_category):
    model = tiny(**kw)
    sampler = PathSampler(model)
    categories = path_lengths(model)[k]
    if kw["block"] == "euler":
        assert categories == 9
    n = categories * per_category
    rng = random.Random(1234)
    counts: dict = {}
    for _ in range(n):
        key = path_key(sampler.sample(k, rng))
        counts[key] = counts.get(key, 0) + 1
    assert len(counts) == categories, "some paths of this length are never drawn (or impossible ones are)"
    assert chi_square(counts, categories, n) < loose_chi2_limit(categories - 1)
