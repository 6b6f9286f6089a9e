"""benchmarks/multistep.py, speed part (smoke sizes): every pair of the issue's targets is timed and reported as a
paired ratio with its interval, and the adjoint accumulation of the reversible backward stays in place."""

import json

import torch


def test_speed_quick_run_reports_every_paired_ratio(tmp_path):
    from benchmarks.multistep import SPEED_PAIRS, main

    out = tmp_path / "multistep.json"
    assert main(["--quick", "--parts", "speed", "--out", str(out), "--threads", "1"]) == 0
    rows = json.loads(out.read_text())["speed"]["ratios"]
    expected = [(a, b, kind) for a, b, kinds, _ in SPEED_PAIRS for kind in kinds]
    assert [(r["cell"], r["reference"], r["kind"]) for r in rows] == expected
    for r in rows:
        assert r["ci_low"] <= r["ratio"] <= r["ci_high"] and r["pairs"] == 2 and r["verdict"] in (
            "below", "above", "undecided")


def test_sums_accumulate_in_place_only_into_their_own_tensors():
    from horesnet.nn.reversible import _Sums

    given = torch.ones(3)
    s = _Sums(2, [torch.tensor(2.0)])
    s.add(0, given)  # c = 1: kept as given, not ours
    s.add(0, given, 0.5)  # a new tensor, ours from here on
    assert torch.equal(given, torch.ones(3)) and s.own[0]
    ours = s.a[0]
    s.add(0, given, 0)  # c = 0 (an index): times coefficient 0, in place
    assert s.a[0] is ours and torch.equal(ours, torch.full((3,), 3.5))
    assert torch.equal(s.pop(0), torch.full((3,), 3.5)) and s.a[0] is None
