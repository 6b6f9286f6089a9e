"""Tests of the analysis tools (DESIGN.md "Analysis"): paths, path sampling, lesions, reordering, effective paths,
layer responses, iterative refinement and noise robustness.

Every expected value comes from somewhere other than the code under test: binomial coefficients and path
polynomials worked out by hand (a classic RK4 block has 1 + 4z + 3z^2 + 2z^3 + z^4), brute-force enumeration of the
chains of a Butcher tableau, the stability polynomial R(hz) = 1 + hz b^T (I - hzA)^{-1} 1 computed with numpy,
products of the linear maps of a linear residual network, forward passes written out by hand (a deleted Euler
block is post(shortcut(x))), Kendall's tau from inversion counts, and the expected calibration error binned by
hand. Networks are tiny (width 0.25, 8x8 images, a handful of images) so the file runs in seconds on a CPU.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import random
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from horesnet import ConfigError, build_model, get_scheme, list_schemes
from horesnet.analysis import (
    EvalData,
    PathSampler,
    block_paths,
    block_polynomial,
    effective_paths,
    error_and_loss,
    kendall_tau,
    lesion_random,
    lesion_single,
    lesion_targets,
    path_lengths,
    refinement,
    reorder,
    response_layers,
    responses,
    robustness,
    write_table,
)
from horesnet.models import BlockSpec
from horesnet.nn import NestedUnit, SchemeBlock

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
    s, out = tab.stages, []
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


@pytest.mark.parametrize("name", list_schemes())
def test_block_paths_match_brute_force_chains(name):
    tab = get_scheme(name)
    block = SchemeBlock(tab, [nn.Identity() for _ in range(tab.stages)], nn.Identity())
    ref_chains = chains(tab)
    expected = [1] + [0] * tab.stages
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
    one = np.ones(tab.stages)
    return [1.0] + [h ** k * float(b @ np.linalg.matrix_power(A, k - 1) @ one) for k in range(1, tab.stages + 1)]


@pytest.mark.parametrize("name", list_schemes())
@pytest.mark.parametrize("h", [1.0, 0.5])
def test_weighted_block_polynomial_is_the_stability_polynomial(name, h):
    tab = get_scheme(name)
    block = SchemeBlock(tab, [nn.Identity() for _ in range(tab.stages)], nn.Identity(), step=h)
    got = np.array(block_polynomial(block, weighted=True), dtype=float)
    ref = np.array(stability_coefficients(tab, h))
    got = np.pad(got, (0, max(0, len(ref) - len(got))))
    assert len(got) == len(ref)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)
    # and R(hz) = 1 + hz b^T (I - hzA)^{-1} 1 evaluated directly, at a real and a complex z
    A, b = np.array(tab.A), np.array(tab.b)
    for z in (0.3, -0.7 + 0.4j):
        direct = 1 + h * z * b @ np.linalg.solve(np.eye(tab.stages) - h * z * A, np.ones(tab.stages))
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


# --------------------------------------------------------------------------------------------------------------
# Lesions
# --------------------------------------------------------------------------------------------------------------

LESION_NETS = {"euler": (dict(block="euler", depth=14), "s2.b2.u1"),
               "rk4": (dict(block="rk4", depth=32), "s1.b2.u3"),
               "nested": (dict(block="rk4", depth=56, inner="midpoint"), "s3.b2.u2.u1")}


@pytest.mark.parametrize("name", list(LESION_NETS))
def test_deleting_a_zero_unit_changes_nothing(name):
    kw, address = LESION_NETS[name]
    model = tiny(**kw)
    randomise_norms(model)
    zero_last_norm(unit_by_address(model, address))
    data = batches()
    x = torch.cat([x for x, _ in data])
    block, inc = owner_of(model, address)
    with torch.no_grad():
        intact = model(x)
        block.zeroed = frozenset({inc})
        try:
            deleted = model(x)
        finally:
            block.zeroed = frozenset()
    assert torch.equal(intact, deleted)
    records = {r["address"]: r for r in lesion_single(model, data)}
    err, loss = evaluate(model, data)
    rec = records[address]
    assert rec["error"] == rec["intact_error"] == pytest.approx(err, abs=1e-9)
    assert rec["loss"] == pytest.approx(loss, abs=1e-6) and rec["intact_loss"] == pytest.approx(loss, abs=1e-6)
    assert rec["delta_error"] == 0
    # the other (non-zero) units do matter
    assert any(abs(r["loss"] - r["intact_loss"]) > 1e-4 for a, r in records.items() if a != address)


def test_lesion_matches_a_forward_pass_with_the_unit_switched_off_by_hand():
    model = tiny("rk4", 32)
    randomise_norms(model)
    data = batches()
    records = lesion_single(model, data)
    assert [r["address"] for r in records] == [a for a, _, _ in model.units()]
    for r in records:
        block, inc = owner_of(model, r["address"])
        block.zeroed = frozenset({inc})
        try:
            err, loss = evaluate(model, data)
        finally:
            block.zeroed = frozenset()
        assert r["error"] == pytest.approx(err, abs=1e-9)
        assert r["loss"] == pytest.approx(loss, abs=1e-6)


def test_plain_block_with_its_unit_deleted_outputs_zeros_of_its_output_shape():
    """A plain (no-skip) block whose only unit is deleted carries nothing: zeros of the block's output shape."""
    model = tiny("euler", 8, shortcut="plain")
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        h = model.stages[0](model.forward_stem(x))
        block = model.stages[1][0]  # the downsampling entry block of stage 2: 4 -> 8 channels, stride 2
        want = block(h).shape
        block.zeroed = frozenset({0})
        try:
            out = block(h)
        finally:
            block.zeroed = frozenset()
    assert out.shape == want
    assert torch.count_nonzero(out) == 0


def test_deleting_any_unit_of_a_plain_net_cuts_the_input_off():
    """Without skips every path runs through every unit: deleting one makes the logits input-independent."""
    model = tiny("euler", 14, shortcut="plain")
    randomise_norms(model)
    data = batches()
    records = lesion_single(model, data)
    assert [r["address"] for r in records] == [a for a, _, _ in model.units()]
    _, intact_loss = evaluate(model, data)
    ys = torch.cat([y for _, y in data])
    for r in records:
        assert r["intact_loss"] == pytest.approx(intact_loss, abs=1e-6)
        # after the lesion every image gets the same logits: the rest of the network run on zeros
        block, _ = owner_of(model, r["address"])
        with torch.no_grad():
            h, found = model.forward_stem(torch.zeros(1, 3, 8, 8)), False
            for _, blk, _ in model.blocks():
                h = blk(h)
                if blk is block:
                    h, found = torch.zeros_like(h), True
            assert found
            const = model.forward_head(model.forward_final(h))
        ref_loss = float(F.cross_entropy(const.expand(len(ys), -1), ys))
        ref_err = 100.0 * int((const.argmax(1) != ys).sum()) / len(ys)
        assert r["loss"] == pytest.approx(ref_loss, abs=1e-5)
        assert r["error"] == pytest.approx(ref_err, abs=1e-9)
        assert abs(r["loss"] - intact_loss) > 1e-6


@pytest.mark.parametrize("kw", [dict(block="euler", depth=14), dict(block="rk4", depth=32),
                                dict(block="rk4", depth=56, inner="midpoint"),
                                dict(block="rk4", depth=32, tied=True)],
                         ids=["euler", "rk4", "rk4[midpoint]", "rk4-tied"])
@pytest.mark.parametrize("granularity", ["unit", "block"])
def test_prefix_reuse_gives_the_naive_result(kw, granularity):
    model = tiny(**kw)
    randomise_norms(model)
    data = batches()
    fast = lesion_single(model, data, granularity, reuse_prefix=True)
    naive = lesion_single(model, data, granularity, reuse_prefix=False)
    assert len(fast) == len(naive) > 0
    for a, b in zip(fast, naive, strict=True):
        assert a["address"] == b["address"]
        assert a["error"] == b["error"]
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-6)
    # the switches are all off again afterwards
    assert all(not m.zeroed for m in model.modules() if isinstance(m, SchemeBlock))


@pytest.mark.parametrize("kw, n_units", [(dict(block="rk4", depth=32), 15),
                                         (dict(block="rk4", depth=26, entry="scheme"), 12),
                                         (dict(block="rk4", depth=56, inner="midpoint"), 27)],
                         ids=["rk4", "rk4-entry-scheme", "rk4[midpoint]"])
def test_entry_and_downsampling_units_are_flagged(kw, n_units):
    model = tiny(**kw)
    targets = lesion_targets(model, "unit")
    records = lesion_single(model, batches(n=2, per_batch=2))
    assert len(targets) == len(records) == n_units
    for t, r in zip(targets, records, strict=True):
        assert t["address"] == r["address"]
        assert r["entry"] == bool(re.match(r"s\d+\.b1\.", r["address"])), r["address"]
        first_unit = re.fullmatch(r"s[23]\.b1\.u1(\.u1)?", r["address"]) is not None
        assert r["downsampling"] == first_unit, r["address"]


def test_block_granularity_deletes_whole_blocks():
    model = tiny("rk4", 32)
    randomise_norms(model)
    data = batches()
    records = lesion_single(model, data, "block")
    blocks = list(model.blocks())
    assert [r["address"] for r in records] == [a for a, _, _ in blocks] == \
        ["s1.b1", "s1.b2", "s2.b1", "s2.b2", "s3.b1", "s3.b2"]
    assert [r["units"] for r in records] == [1, 4] * 3
    assert [r["entry"] for r in records] == [True, False] * 3
    assert [r["downsampling"] for r in records] == [False, False, True, False, True, False]
    for r, (_, block, _) in zip(records, blocks, strict=True):
        err, loss = evaluate(forward_without(model, [block]), data)
        assert r["granularity"] == "block"
        assert r["error"] == pytest.approx(err, abs=1e-9)
        assert r["loss"] == pytest.approx(loss, abs=1e-6)


def test_lesion_random():
    model = tiny("euler", 20)  # 9 Euler blocks, 6 of them not entries
    randomise_norms(model)
    data = batches()
    entries = {"s1.b1.u1", "s2.b1.u1", "s3.b1.u1"}
    every = [a for a, _, _ in model.units()]
    records = lesion_random(model, data, ks=(1, 2, 4), trials=3, seed=5)
    assert sorted((r["k"], r["trial"]) for r in records) == [(k, t) for k in (1, 2, 4) for t in range(3)]
    intact_err, _ = evaluate(model, data)
    blocks = {a: b for a, b, _ in model.blocks()}
    for r in records:
        deleted = r["deleted"].split()
        assert len(deleted) == len(set(deleted)) == r["k"]
        assert set(deleted) <= set(every) - entries
        assert r["intact_error"] == pytest.approx(intact_err, abs=1e-9)
        err, loss = evaluate(forward_without(model, [blocks[a.rsplit(".", 1)[0]] for a in deleted]), data)
        assert r["error"] == pytest.approx(err, abs=1e-9)
        assert r["loss"] == pytest.approx(loss, abs=1e-6)
    assert records == lesion_random(model, data, ks=(1, 2, 4), trials=3, seed=5)  # reproducible
    everything = lesion_random(model, data, ks=(9,), trials=1, include_entry=True)
    assert sorted(everything[0]["deleted"].split()) == sorted(every)
    with pytest.raises(ValueError):
        lesion_random(model, data, ks=(7,), trials=1)  # only 6 non-entry units


# --------------------------------------------------------------------------------------------------------------
# Reordering
# --------------------------------------------------------------------------------------------------------------

def test_kendall_tau_on_known_permutations():
    assert kendall_tau([0, 1, 2]) == 1.0
    assert kendall_tau([2, 1, 0]) == -1.0
    assert kendall_tau([0, 2, 1, 3]) == pytest.approx(2 / 3)
    assert kendall_tau([1, 0, 2, 3]) == pytest.approx(2 / 3)
    rng = random.Random(3)
    for n in (5, 9):
        perm = list(range(n))
        rng.shuffle(perm)
        inversions = sum(1 for i, j in itertools.combinations(range(n), 2) if perm[i] > perm[j])
        assert kendall_tau(perm) == pytest.approx(1 - 4 * inversions / (n * (n - 1)))


def test_reordering_identical_blocks_changes_nothing():
    model = tiny("euler", 26)  # 4 blocks per stage: an entry and three movable blocks
    randomise_norms(model)
    with torch.no_grad():
        for stage in model.stages:  # stages differ from each other; within a stage, b2 = b3 = b4
            for block in list(stage)[2:]:
                block.load_state_dict(stage[1].state_dict())
    data = batches()
    err, loss = evaluate(model, data)
    records = reorder(model, data, swaps=(1, 2, 4), trials=3, seed=0)
    assert sorted((r["swaps"], r["trial"]) for r in records) == [(s, t) for s in (1, 2, 4) for t in range(3)]
    assert any(r["kendall_tau"] < 1 for r in records), "no reordering happened"
    for r in records:
        assert -1 <= r["kendall_tau"] <= 1
        assert r["error"] == pytest.approx(err, abs=1e-9)
        assert r["loss"] == pytest.approx(loss, abs=1e-5)


def test_reordering_distinct_blocks_changes_the_output():
    model = tiny("euler", 26)
    randomise_norms(model)
    data = batches()
    _, loss = evaluate(model, data)
    records = reorder(model, data, swaps=(0, 1, 4), trials=2, seed=1)
    for r in records:
        if r["swaps"] == 0:
            assert r["kendall_tau"] == 1.0 and r["loss"] == pytest.approx(loss, abs=1e-6)
    moved = [r for r in records if r["kendall_tau"] < 1]
    assert moved and all(abs(r["loss"] - loss) > 1e-6 for r in moved)


def test_reorder_without_movable_blocks_keeps_the_order():
    """Depth 8 has one block per stage, all entries: nothing can move, so the order stays and so does the error."""
    model = tiny("euler", 8)
    data = batches()
    err, loss = evaluate(model, data)
    records = reorder(model, data, swaps=(1,), trials=2)
    assert len(records) == 2
    for r in records:
        assert r["kendall_tau"] == 1.0
        assert r["error"] == pytest.approx(err, abs=1e-9)


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
        units = [linear_unit(gen) for _ in range(tab.stages)]
    else:
        units = [NestedUnit(linear_block(inner, h, gen)) for _ in range(tab.stages)]
        for u in units:
            u.block.shortcut = nn.Identity()
    return SchemeBlock(tab, units, nn.Identity(), None, step=h)


def matrix(conv: nn.Conv2d) -> torch.Tensor:
    return conv.weight[:, :, 0, 0].detach()


def chain_matrix(block: SchemeBlock, chain, inner_chains=None) -> torch.Tensor:
    """h b_im W_im (h A_im,i(m-1)) W_i(m-1) ... W_i1 (nested units: their own inner chain matrix)."""
    h, A, b = block.h, block.scheme.A, block.scheme.b
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
    try:
        for blk, route in routes_per_block.items():
            blk.route = route
        h = x
        for blk in blocks:
            h = blk(h)
        (grad,) = torch.autograd.grad((h * g).sum(), x)
    finally:
        for blk in routes_per_block:
            blk.route = None
    return grad


@pytest.mark.parametrize("name", ["euler", "midpoint", "rk3", "rk4", "rk4_38", "heun3"])
def test_route_selects_exactly_one_path_of_a_linear_block(name):
    gen = torch.Generator().manual_seed(0)
    block = linear_block(name, 0.7, gen)
    x = torch.randn(2, C, 3, 3, generator=gen, dtype=DT)
    g = torch.randn(2, C, 3, 3, generator=gen, dtype=DT)
    total = torch.zeros_like(x)
    for chain in [()] + chains(block.scheme):
        route = {e: True for e in chain_edges(chain)}
        grad = routed_grad([block], {block: route}, x, g)
        want = apply_transpose(chain_matrix(block, chain), g)
        torch.testing.assert_close(grad, want, rtol=1e-12, atol=1e-12)
        total += grad
    # the paths partition the Jacobian: their gradients add up to the unrouted one
    xx = x.clone().requires_grad_(True)
    (full,) = torch.autograd.grad((block(xx) * g).sum(), xx)
    torch.testing.assert_close(total, full, rtol=1e-10, atol=1e-12)


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
    assert all(b.route is None for b in blocks)


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
            yield f"s1.b{i}", b, BlockSpec(b.scheme.name, b.scheme.stages, entry=(i == 1))

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
    assert all(b.route is None for b in blocks)


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
    assert all(b.route is None for b in model.modules() if isinstance(b, SchemeBlock))


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


# --------------------------------------------------------------------------------------------------------------
# Layer responses
# --------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw, expected", [(dict(block="euler", depth=8), 1 + 2 * 3),
                                          (dict(block="rk4", depth=32, tied=True), 1 + 2 * 15),
                                          (dict(block="rk4", depth=56, inner="midpoint"), 1 + 2 * 27),
                                          (dict(block="euler", depth=11, unit="bottleneck"), 1 + 3)],
                         ids=["euler", "rk4-tied", "rk4[midpoint]", "bottleneck"])
def test_one_response_per_3x3_conv(kw, expected):
    model = tiny(**kw)
    layers = response_layers(model)
    assert len(layers) == expected
    names = ["stem.conv"]
    for address, _, _ in model.units():
        names += [f"{address}.conv2"] if kw.get("unit") == "bottleneck" else [f"{address}.conv1", f"{address}.conv2"]
    assert [n for n, _ in layers] == names
    records = responses(model, batches(n=2, per_batch=2))
    assert [r["layer"] for r in records] == list(range(1, expected + 1))
    assert [r["name"] for r in records] == names


def pop_std(t: torch.Tensor) -> float:
    return float(t.double().std(unbiased=False))


def test_response_values_by_hand():
    model = tiny("euler", 14)
    randomise_norms(model)
    data = batches(n=6, per_batch=3)
    x = torch.cat([x for x, _ in data])
    records = responses(model, data)
    with torch.no_grad():
        conv, bn = model.stem[0], model.stem[1]
        stem_resp = bn(conv(x))
        unit = model.stages[0][0].units[0]  # s1.b1.u1, original placement: conv-BN-ReLU-conv-BN
        a = unit.norms[0](unit.convs[0](F.relu(stem_resp)))
        b = unit.norms[1](unit.convs[1](F.relu(a)))
    assert [r["name"] for r in records[:3]] == ["stem.conv", "s1.b1.u1.conv1", "s1.b1.u1.conv2"]
    for r, t in zip(records[:3], (stem_resp, a, b), strict=True):
        assert r["std"] == pytest.approx(pop_std(t), rel=1e-5)
    ranks = [r["rank"] for r in records]
    assert sorted(ranks) == list(range(1, len(records) + 1))
    by_rank = sorted(records, key=lambda r: r["rank"])
    assert all(p["std"] >= q["std"] for p, q in zip(by_rank, by_rank[1:], strict=False))


def test_tied_block_responses_follow_the_increments():
    model = tiny("rk4", 32, tied=True)
    randomise_norms(model)
    data = batches(n=4, per_batch=2)
    x = torch.cat([x for x, _ in data])
    records = {r["name"]: r["std"] for r in responses(model, data)}
    with torch.no_grad():
        h = model.stages[0][0](model.forward_stem(x))  # input of the tied rk4 block s1.b2
        unit = model.stages[0][1].unit(0)
        z, k = [h], []
        for i, a in enumerate([None, 0.5, 0.5, 1.0]):
            zi = h if i == 0 else h + a * k[-1]  # classic RK4: z_i = x + a_{i,i-1} k_{i-1}
            z.append(zi)
            k.append(unit(zi))
            want = pop_std(unit.norms[0](unit.convs[0](zi)))
            assert records[f"s1.b2.u{i + 1}.conv1"] == pytest.approx(want, rel=1e-5)
    assert len({records[f"s1.b2.u{i}.conv1"] for i in range(1, 5)}) == 4


# --------------------------------------------------------------------------------------------------------------
# Iterative refinement
# --------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw", [dict(block="euler", depth=14), dict(block="rk4", depth=32, placement="full_preact")],
                         ids=["euler", "rk4-full-preact"])
def test_refinement(kw):
    model = tiny(**kw)
    randomise_norms(model)
    data = batches()
    records = refinement(model, data)
    blocks = list(model.blocks())
    assert [r["address"] for r in records] == [a for a, _, _ in blocks]
    assert [r["block"] for r in records] == list(range(1, len(blocks) + 1))
    err, loss = evaluate(model, data)
    assert records[-1]["error"] == pytest.approx(err, abs=1e-9)
    assert records[-1]["accuracy"] == pytest.approx(100 - err, abs=1e-9)
    assert records[-1]["loss"] == pytest.approx(loss, abs=1e-6)
    lib_err, lib_loss = error_and_loss(model, EvalData.wrap(data))
    assert lib_err == pytest.approx(err, abs=1e-9) and lib_loss == pytest.approx(loss, abs=1e-6)
    # every block by hand: the head on the block output, zero channels appended where it is narrower
    for j, r in enumerate(records):
        def head_after(x, j=j):
            h = model.forward_stem(x)
            for _, b, _ in blocks[:j + 1]:
                h = b(h)
            pad = torch.zeros(h.shape[0], model.num_features - h.shape[1], *h.shape[2:])
            return model.forward_head(model.forward_final(torch.cat([h, pad], 1)))
        e, l = evaluate(head_after, data)
        assert r["error"] == pytest.approx(e, abs=1e-9)
        assert r["loss"] == pytest.approx(l, abs=1e-6)
        assert r["channels_padded"] == (not r["address"].startswith("s3."))


# --------------------------------------------------------------------------------------------------------------
# Robustness
# --------------------------------------------------------------------------------------------------------------

def ece_by_hand(logits: torch.Tensor, y: torch.Tensor, n_bins: int = 15) -> float:
    p = logits.double().softmax(1)
    conf, pred = p.max(1)
    total = 0.0
    for lo, hi in zip(np.linspace(0, 1, n_bins + 1)[:-1], np.linspace(0, 1, n_bins + 1)[1:], strict=True):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            total += float(m.double().mean()) * abs(float((pred[m] == y[m]).double().mean()) - float(conf[m].mean()))
    return total


def test_robustness_to_gaussian_noise():
    model = tiny("euler", 8)
    x = torch.randn(64, 3, 8, 8)
    with torch.no_grad():
        y = model(x).argmax(1)  # labels the clean network gets right: clean accuracy 100%
    data = [(x[:32], y[:32]), (x[32:], y[32:])]
    records = robustness(model, data, sigmas=(0.0, 50.0), seed=0)
    assert [r["sigma"] for r in records] == [0.0, 50.0]
    clean_err, clean_loss = evaluate(model, data)
    assert clean_err == 0.0
    assert records[0]["accuracy"] == pytest.approx(100.0) and records[0]["error"] == pytest.approx(0.0)
    assert records[0]["loss"] == pytest.approx(clean_loss, abs=1e-5)
    with torch.no_grad():
        assert records[0]["ece"] == pytest.approx(ece_by_hand(model(x), y), abs=1e-5)
    assert records[1]["accuracy"] <= records[0]["accuracy"]
    assert records[1]["accuracy"] < 50, "huge noise should wash out the signal"
    assert records[1]["accuracy"] + records[1]["error"] == pytest.approx(100.0)
    for r in records:
        assert 0 <= r["ece"] <= 1


def test_robustness_noise_is_in_pixel_units():
    """With a per-channel pixel std s, sigma is scaled by 1/s: (sigma, std s) == (sigma / s, no std)."""
    model = tiny("euler", 8)
    data = batches(n=8, per_batch=4)
    scaled = robustness(model, EvalData(data, pixel_std=torch.full((3,), 2.0)), sigmas=(0.4,), seed=3)
    plain = robustness(model, EvalData(data), sigmas=(0.2,), seed=3)
    for key in ("accuracy", "ece", "loss"):
        assert scaled[0][key] == pytest.approx(plain[0][key], rel=1e-6, abs=1e-7)
    clean = robustness(model, data, sigmas=(0.0,))
    assert clean[0]["loss"] != pytest.approx(plain[0]["loss"], abs=1e-9)


# --------------------------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------------------------

def test_write_table_round_trips(tmp_path):
    records = [{"a": 1, "b": 0.5, "c": "x"}, {"a": 2, "b": -1.25, "d": True}]
    csv_path, json_path = write_table(records, tmp_path / "out", "t")
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["a", "b", "c", "d"]
    assert rows == [{"a": "1", "b": "0.5", "c": "x", "d": ""}, {"a": "2", "b": "-1.25", "c": "", "d": "True"}]
    assert json.loads(json_path.read_text()) == records
