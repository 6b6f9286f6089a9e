"""Tests of the per-layer studies (docs/design.md, "Analysis"): layer responses, iterative refinement, noise robustness,
and the CSV/JSON tables they are written to.

Expected values come from forward passes written out by hand (every block from its units, shortcut, post and
tableau), layer counts from the depth formula of He et al. 2015 and the expected calibration error binned by hand.
Networks are tiny (width 0.25, 8x8 images, a handful of images), so the file runs in seconds on a CPU.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from horesnet import get_scheme, list_schemes
from horesnet.analysis import EvalData, error_and_loss, refinement, response_layers, responses, robustness, write_table

from ._analysis_helpers import (
    CONVS,
    batches,
    block_increments_by_hand,
    evaluate,
    forward_by_hand,
    randomise_norms,
    smallest_depth,
    tiny,
    tiny_one_block,
)

# --------------------------------------------------------------------------------------------------------------
# Layer responses
# --------------------------------------------------------------------------------------------------------------

def hand_unit_names(increments: int, inner: int = 0) -> list[str]:
    """Addresses of a network whose stages each hold an Euler entry unit and one block of ``increments`` units (each
    itself ``inner`` units when nested), written out from the address rule of docs/design.md ("Vocabulary")."""
    names = []
    for st in (1, 2, 3):
        names.append(f"s{st}.b1.u1")
        for i in range(1, increments + 1):
            names += [f"s{st}.b2.u{i}.u{j}" for j in range(1, inner + 1)] if inner else [f"s{st}.b2.u{i}"]
    return names


RESPONSE_NETS = {**{s: (dict(block=s, depth=smallest_depth(s)), hand_unit_names(get_scheme(s).increments))
                    for s in list_schemes("rk")},
                 "rk4-tied": (dict(block="rk4", depth=32, tied=True), hand_unit_names(4)),
                 "rk4[midpoint]": (dict(block="rk4", depth=56, inner="midpoint"), hand_unit_names(4, inner=2)),
                 "bottleneck": (dict(block="euler", depth=11, unit="bottleneck"), ["s1.b1.u1", "s2.b1.u1", "s3.b1.u1"])}


@pytest.mark.parametrize("name", list(RESPONSE_NETS))
def test_one_response_per_3x3_conv(name):
    kw, units = RESPONSE_NETS[name]
    model = tiny(**kw)
    unit = kw.get("unit", "basic")
    per_stage = (kw["depth"] - 2) // (3 * CONVS[unit])  # units per stage (He et al. 2015, Sec. 4.2)
    # the stem and every 3x3 conv: all weighted layers but the fc for basic units, the middle conv of a bottleneck
    expected = kw["depth"] - 1 if unit == "basic" else 1 + 3 * per_stage
    convs = ["conv1", "conv2"] if unit == "basic" else ["conv2"]
    names = ["stem.conv"] + [f"{u}.{c}" for u in units for c in convs]
    assert len(names) == expected
    assert [name for name, _ in response_layers(model)] == names
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


@pytest.mark.parametrize("scheme, tied", [(s, False) for s in list_schemes("rk")] + [("rk4", True)],
                         ids=list_schemes("rk") + ["rk4-tied"])
def test_responses_of_every_increment_by_hand(scheme, tied):
    """Inside the scheme block, unit i sees z_i = x + h sum_j A_ij k_j: its responses from the tableau by hand (a
    tied block's one unit answers differently at each increment)."""
    model = tiny_one_block(scheme, tied=tied)
    randomise_norms(model)
    data = batches(n=4, per_batch=2)
    x = torch.cat([x for x, _ in data])
    records = {r["name"]: r["std"] for r in responses(model, data)}
    with torch.no_grad():
        entry, block = model.stages[0][0], model.stages[0][1]  # s1.b1 and the scheme block s1.b2
        zs, _, _ = block_increments_by_hand(block, block_increments_by_hand(entry, model.forward_stem(x))[2])
        assert len(zs) == get_scheme(scheme).increments
        for i, z in enumerate(zs, 1):
            unit = block.unit(i - 1)  # original placement: conv-BN-ReLU-conv-BN
            a = unit.norms[0](unit.convs[0](z))
            b = unit.norms[1](unit.convs[1](F.relu(a)))
            assert records[f"s1.b2.u{i}.conv1"] == pytest.approx(pop_std(a), rel=1e-5), i
            assert records[f"s1.b2.u{i}.conv2"] == pytest.approx(pop_std(b), rel=1e-5), i
    assert len({records[f"s1.b2.u{i}.conv1"] for i in range(1, len(zs) + 1)}) == len(zs)


# --------------------------------------------------------------------------------------------------------------
# Iterative refinement
# --------------------------------------------------------------------------------------------------------------

REFINEMENT_NETS = {**{s: dict(block=s, stages=[get_scheme(s).increments + 1, 1, 1], depth=None)
                      for s in list_schemes("rk")},
                   "euler-depth14": dict(block="euler", depth=14),
                   "rk4-full-preact": dict(block="rk4", depth=32, placement="full_preact")}


@pytest.mark.parametrize("name", list(REFINEMENT_NETS))
def test_refinement(name):
    model = tiny(**REFINEMENT_NETS[name]).double()
    randomise_norms(model)
    data = [(x.double(), y) for x, y in batches()]
    records = refinement(model, data)
    blocks = list(model.blocks())
    assert [r["address"] for r in records] == [a for a, _, _ in blocks]
    assert [r["block"] for r in records] == list(range(1, len(blocks) + 1))
    err, loss = evaluate(lambda x: forward_by_hand(model, x), data)
    assert records[-1]["error"] == pytest.approx(err, abs=1e-9)
    assert records[-1]["accuracy"] == pytest.approx(1 - err, abs=1e-9)
    assert records[-1]["loss"] == pytest.approx(loss, rel=1e-6)
    lib_err, lib_loss = error_and_loss(model, EvalData.wrap(data))
    assert lib_err == pytest.approx(err, abs=1e-9) and lib_loss == pytest.approx(loss, rel=1e-6)
    # every block by hand: the head on the block output, zero channels appended where it is narrower
    for j, r in enumerate(records):
        def head_after(x, j=j):
            h = model.forward_stem(x)
            for _, b, _ in blocks[:j + 1]:
                h = block_increments_by_hand(b, h)[2]
            pad = torch.zeros(h.shape[0], model.num_features - h.shape[1], *h.shape[2:], dtype=h.dtype)
            return model.forward_head(model.forward_final(torch.cat([h, pad], 1)))
        e, l = evaluate(head_after, data)
        assert r["error"] == pytest.approx(e, abs=1e-9)
        assert r["loss"] == pytest.approx(l, rel=1e-6)
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


@pytest.mark.parametrize("scheme", list_schemes("rk"))
def test_robustness_by_hand(scheme):
    """Accuracy, loss and ECE under x + sigma N(0, 1) (noise drawn batch by batch from a generator seeded with
    ``seed`` for each sigma), with the network computed block by block by hand."""
    model = tiny_one_block(scheme).double()
    randomise_norms(model)
    x = torch.cat([x for x, _ in batches(n=8, per_batch=4)]).double()
    with torch.no_grad():
        y = forward_by_hand(model, x).argmax(1)  # labels the clean network gets right
    data = [(x[:4], y[:4]), (x[4:], y[4:])]
    records = robustness(model, data, sigmas=(0.0, 1.5), seed=7)
    assert [r["sigma"] for r in records] == [0.0, 1.5]
    for r in records:
        gen = torch.Generator().manual_seed(7)
        with torch.no_grad():
            logits = torch.cat([forward_by_hand(model, xb + r["sigma"] * torch.randn(xb.shape, generator=gen))
                                for xb, _ in data])
        acc = int((logits.argmax(1) == y).sum()) / len(y)  # a fraction in [0, 1] (docs/analysis.md, "Units")
        assert r["accuracy"] == pytest.approx(acc, abs=1e-12) and r["error"] == pytest.approx(1 - acc, abs=1e-12)
        assert r["loss"] == pytest.approx(float(F.cross_entropy(logits, y)), rel=1e-5)
        assert r["ece"] == pytest.approx(ece_by_hand(logits, y), abs=1e-5)
    assert records[0]["accuracy"] == 1.0
    assert abs(records[1]["loss"] - records[0]["loss"]) > 1e-3, "the noise was not applied"


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
    assert records[0]["accuracy"] == 1.0 and records[0]["error"] == 0.0
    assert records[0]["loss"] == pytest.approx(clean_loss, abs=1e-5)
    with torch.no_grad():
        assert records[0]["ece"] == pytest.approx(ece_by_hand(model(x), y), abs=1e-5)
    assert records[1]["accuracy"] <= records[0]["accuracy"]
    assert records[1]["accuracy"] < 0.5, "huge noise should wash out the signal"
    assert records[1]["accuracy"] + records[1]["error"] == pytest.approx(1.0)
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
