"""benchmarks/transformer_speed.py --quick writes its report: the torch twin agrees with the Euler stack in fp32
and under bf16 autocast, every ratio is summarised from its own pairs (no timed assertion)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_quick_report(tmp_path):
    out, md = tmp_path / "t.json", tmp_path / "t.md"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.transformer_speed", "--quick", "--out", str(out),
                           "--markdown", str(md)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rep = json.loads(out.read_text())
    assert rep["threads"] == 1 and rep["model"]["residual_functions"] == 8
    assert rep["max_abs_output_difference"]["fp32"] < 1e-5
    assert rep["max_abs_output_difference"]["bf16"] < 0.1
    jobs = {(r["cell"], r["reference"], r["kind"], r["precision"]) for r in rep["ratios"]}
    assert jobs == {("euler", "torch", k, p) for k in ("train", "eval") for p in ("fp32", "bf16")} | {
        ("heun_layers", "euler", "train", "fp32"), ("rk4_layers", "euler", "train", "fp32")}
    for r in rep["ratios"]:
        pairs = [pair for rnd in r["times_s"] for pair in rnd]
        assert r["pairs"] == len(pairs) == rep["pairs_per_ratio"]
        assert r["wall"]["ratio"] == pytest.approx(statistics.median(a / b for a, b, _, _ in pairs))
        assert r["cpu"]["ratio"] == pytest.approx(statistics.median(a / b for _, _, a, b in pairs))
        for s in (r["wall"], r["cpu"]):
            assert s["ci_low"] <= s["ratio"] <= s["ci_high"]
            assert s["verdict"] == ("below" if s["ci_high"] <= 1.03 else "above" if s["ci_low"] > 1.03
                                    else "undecided")
    tps = {(t["model"], t["kind"], t["precision"]): t for t in rep["tokens_per_s"]}
    steps = [a for r in rep["ratios"] if r["cell"] == "euler" and r["kind"] == "eval" and r["precision"] == "fp32"
             for rnd in r["times_s"] for a, _, _, _ in rnd]
    assert tps["euler", "eval", "fp32"]["wall"] == pytest.approx(4 * 16 / statistics.median(steps))
    assert "| euler / torch | train | bf16 |" in md.read_text()


def test_bad_option_is_refused():
    for argv, msg in ((["--layers", "0"], "--layers must be a positive integer"),
                      (["--precisions", "fp16"], "--precisions takes a comma list")):
        proc = subprocess.run([sys.executable, "-m", "benchmarks.transformer_speed", *argv], cwd=REPO,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and msg in proc.stderr
