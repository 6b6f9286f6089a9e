"""Tests of the per-layer studies (docs/design.md, "Analysis"): layer responses, iterative refinement, noise robustness,
and the CSV/JSON tables they are written to.

Expected values come from forward passes written out by hand and the expected calibration error binned by hand.
Networks are tiny (width 0.25, 8x8 images, a handful of images), so the file runs in seconds on a CPU.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from horesnet.analysis import EvalData, error_and_loss, refinement, response_layers, responses, robustness, write_table

sys.path.insert(0, str(Path(__file__).parent))
from _analysis_helpers import batches, evaluate, randomise_norms, tiny  # noqa: E402

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
