"""Tests of the lesion and reordering studies (docs/design.md, "Analysis").

Expected values come from forward passes written out by hand (every block computed from its units, shortcut, post
and tableau with the deleted increment's k_i = 0; a deleted block is post(shortcut(x))) and from Kendall's tau
computed from inversion counts. Networks are tiny (width 0.25, 8x8 images, a handful of
images), so the file runs in seconds on a CPU.
"""

from __future__ import annotations

import itertools
import random
import re

import pytest
import torch
import torch.nn.functional as F

from horesnet import get_scheme, list_schemes
from horesnet.analysis import kendall_tau, lesion_random, lesion_single, lesion_targets, reorder
from horesnet.nn import SchemeBlock, SwitchOff, hooked

from ._analysis_helpers import (
    batches,
    evaluate,
    forward_by_hand,
    forward_without,
    owner_of,
    randomise_norms,
    tiny,
    unit_by_address,
    zero_last_norm,
)

# --------------------------------------------------------------------------------------------------------------
# Lesions
# --------------------------------------------------------------------------------------------------------------

def one_block_address(scheme: str) -> str:
    """A unit in the middle of the scheme block of ``tiny_one_block(scheme)`` (its k_i feeds later increments)."""
    return f"s1.b2.u{get_scheme(scheme).increments // 2 + 1}"


LESION_NETS = {**{s: (dict(block=s, stages=[get_scheme(s).increments + 1, 1, 1], depth=None), one_block_address(s))
                  for s in list_schemes("rk")},
               "rk4-depth32": (dict(block="rk4", depth=32), "s1.b2.u3"),
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
        with hooked({block: SwitchOff({inc})}):
            deleted = model(x)
    assert torch.equal(intact, deleted)
    records = {r["address"]: r for r in lesion_single(model, data)}
    err, loss = evaluate(model, data)
    rec = records[address]
    assert rec["error"] == rec["intact_error"] == pytest.approx(err, abs=1e-9)
    assert rec["loss"] == pytest.approx(loss, abs=1e-6) and rec["intact_loss"] == pytest.approx(loss, abs=1e-6)
    assert rec["delta_error"] == 0
    # the other (non-zero) units do matter
    assert any(abs(r["loss"] - r["intact_loss"]) > 1e-4 for a, r in records.items() if a != address)


HAND_NETS = {**{s: dict(block=s, stages=[get_scheme(s).increments + 1, 1, 1], depth=None) for s in list_schemes("rk")},
             "rk4[midpoint]": dict(block="rk4", stages=[9, 1, 1], depth=None, inner="midpoint"),
             "rk4-tied": dict(block="rk4", depth=32, tied=True),
             "midpoint-learn-step": dict(block="midpoint", depth=20, learn_step=True, step=0.5)}


@pytest.mark.parametrize("name", list(HAND_NETS))
def test_lesion_matches_a_forward_pass_with_the_unit_switched_off_by_hand(name):
    """Each unit's lesion against the network computed block by block from the tableau with that k_i = 0
    (``forward_by_hand``: no hook, no block forward pass), with and without the shared-prefix reuse."""
    model = tiny(**HAND_NETS[name]).double()
    randomise_norms(model)
    data = [(x.double(), y) for x, y in batches(n=4, per_batch=4)]
    addresses = [a for a, _, _ in model.units()]
    for reuse in (True, False):
        records = lesion_single(model, data, reuse_prefix=reuse)
        assert [r["address"] for r in records] == addresses
        for r in records:
            block, inc = owner_of(model, r["address"])
            err, loss = evaluate(lambda x, block=block, inc=inc: forward_by_hand(model, x, {block: {inc}}), data)
            assert r["error"] == pytest.approx(err, abs=1e-9), r["address"]
            assert r["loss"] == pytest.approx(loss, rel=1e-6), r["address"]  # the tool sums float32 losses
    # the hooks are all removed again afterwards
    assert all(m.hook is None for m in model.modules() if isinstance(m, SchemeBlock))


def test_plain_block_with_its_unit_deleted_outputs_zeros_of_its_output_shape():
    """A plain (no-skip) block whose only unit is deleted carries nothing: zeros of the block's output shape."""
    model = tiny("euler", 8, shortcut="plain")
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        h = model.stages[0](model.forward_stem(x))
        block = model.stages[1][0]  # the downsampling entry block of stage 2: 4 -> 8 channels, stride 2
        want = block(h).shape
        with hooked({block: SwitchOff({0})}):
            out = block(h)
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
        ref_err = int((const.argmax(1) != ys).sum()) / len(ys)
        assert r["loss"] == pytest.approx(ref_loss, abs=1e-5)
        assert r["error"] == pytest.approx(ref_err, abs=1e-9)
        assert abs(r["loss"] - intact_loss) > 1e-6


@pytest.mark.parametrize("kw", [dict(block="euler", depth=14), dict(block="rk4", depth=32),
                                dict(block="rk4", depth=56, inner="midpoint"),
                                dict(block="rk4", depth=32, tied=True)],
                         ids=["euler", "rk4", "rk4[midpoint]", "rk4-tied"])
def test_block_lesions_with_and_without_prefix_reuse_match_the_block_deleted_by_hand(kw):
    model = tiny(**kw)
    randomise_norms(model)
    data = batches()
    blocks = list(model.blocks())
    for reuse in (True, False):
        records = lesion_single(model, data, "block", reuse_prefix=reuse)
        assert [r["address"] for r in records] == [a for a, _, _ in blocks]
        for r, (_, block, _) in zip(records, blocks, strict=True):
            err, loss = evaluate(forward_without(model, [block]), data)
            assert r["error"] == pytest.approx(err, abs=1e-9)
            assert r["loss"] == pytest.approx(loss, abs=1e-6)
    assert all(m.hook is None for m in model.modules() if isinstance(m, SchemeBlock))


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


def test_block_granularity_flags():
    """The errors of block lesions: test_block_lesions_with_and_without_prefix_reuse_match_the_block_deleted_by_hand."""
    model = tiny("rk4", 32)
    records = lesion_single(model, batches(n=2, per_batch=2), "block")
    blocks = list(model.blocks())
    assert [r["address"] for r in records] == [a for a, _, _ in blocks] == \
        ["s1.b1", "s1.b2", "s2.b1", "s2.b2", "s3.b1", "s3.b2"]
    assert [r["units"] for r in records] == [1, 4] * 3
    assert [r["entry"] for r in records] == [True, False] * 3
    assert [r["downsampling"] for r in records] == [False, False, True, False, True, False]
    assert {r["granularity"] for r in records} == {"block"}


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
