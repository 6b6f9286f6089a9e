"""Tests of experiments/report_converged.py (docs/converged.md) on hand-written run folders.

Accuracies are chosen so that each Welch test has a closed form: with one arm without spread, df = 2 and
p = 1 − |t|/√(2 + t²) (tests/test_experiment_report.py).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from ._compare_helpers import (
    write_metrics,
    write_run,
)

REPORT = Path(__file__).parents[1] / "experiments" / "report_converged.py"
ACC = {"euler": [0.90, 0.91, 0.92], "rk4": [0.93, 0.93, 0.93], "euler-h0.3333": [0.95, 0.96, 0.97]}


def _pool(tmp_path: Path) -> Path:
    pool = tmp_path / "runs"
    for variant, accs in ACC.items():
        for seed, acc in enumerate(accs):
            block, extra = ("euler", ("step=0.3333",)) if variant.startswith("euler-h") else (variant, ())
            run = write_run(pool, block, 56, seed, acc, acc, extra=extra, params=853_018)
            write_metrics(run, [0.5, 0.8, 0.85, 0.86, 0.86], [0.6, 0.8, 0.85, 0.86, acc])
            run.rename(pool / f"{variant}-d56-s{seed}")
    return pool


def _run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPORT), *map(str, args)], capture_output=True, text=True, timeout=300)


def test_extra_seeds_go_to_both_arms_of_every_difference_with_p_between_001_and_02(tmp_path):
    """rk4 − euler: −2 points, t² = 12, p = 0.074 (in range); rk4 − control: +3, t² = 27, p = 0.035 (in range);
    control − euler: −5 with equal spreads, p = 0.004 (out of range). So all three get seeds 3 and 4, and the
    control's options come from its name."""
    proc = _run("extra", _pool(tmp_path))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "euler-h0.3333-d56-s3 block=euler step=0.3333 depth=56 seed=3" in lines
    assert "rk4-d56-s4 block=rk4 depth=56 seed=4" in lines
    assert sorted(line.split()[0] for line in lines) == sorted(
        f"{v}-d56-s{s}" for v in ACC for s in (3, 4))


def test_report_differences_are_welch_in_error_points(tmp_path):
    out = tmp_path / "out"
    proc = _run("report", _pool(tmp_path), out)
    assert proc.returncode == 0, proc.stderr
    rep = json.loads((out / "converged.json").read_text())["depths"]["56"]
    raw = rep["differences"]["RK4 vs Euler (raw)"]
    assert (raw["a"], raw["b"]) == ("rk4", "euler")
    d = raw["test_error"]   # error 7 vs 9, 8, ... : −2 points, t = −2√3, df = 2
    assert math.isclose(d["difference"], -2.0, abs_tol=1e-9)
    assert math.isclose(d["p"], 1 - math.sqrt(12 / 14), rel_tol=1e-6)
    matched = rep["differences"]["RK4 vs Euler at RK4's residual scale"]
    assert matched["b"] == "euler-h0.3333" and math.isclose(matched["test_error"]["difference"], 3.0, abs_tol=1e-9)
    assert math.isclose(matched["test_error"]["p"], 1 - math.sqrt(27 / 29), rel_tol=1e-6)
    # the plateau column: training error per epoch 50, 20, 15, 14, 14 %; over the last 3 epochs 14 − 20 = −6 points
    assert math.isclose(rep["variants"]["euler"]["train_error_change_last3"]["mean"], -6.0, abs_tol=1e-9)
    md = (out / "converged.md").read_text()
    assert "| rk4 |" in md and "RK4 vs Euler (raw) (rk4 − euler): -2.00" in md
    for name in ("comparison.md", "convergence.png"):
        assert (out / "d56" / name).is_file()


def test_partial_report_says_runs_finished_per_arm_cpu_and_not_tested(tmp_path):
    """Two seeds of rk4 and one with a recorded CPU change: each arm reports "n of 3", every run its CPU(s), and a
    difference with fewer than 3 seeds in an arm is "not tested" (docs/design.md "Statistics")."""
    pool = _pool(tmp_path)
    for seed in (1, 2):
        run = pool / f"rk4-d56-s{seed}"
        if seed == 2:
            import shutil

            shutil.rmtree(run)
            continue
        summary = json.loads((run / "summary.json").read_text())
        summary["cpus"] = ["AMD EPYC (no bf16 instructions)", "Intel Xeon (avx512_bf16, amx_bf16)"]
        (run / "summary.json").write_text(json.dumps(summary, indent=2))
    out = tmp_path / "out"
    proc = _run("report", pool, out)
    assert proc.returncode == 0, proc.stderr
    rep = json.loads((out / "converged.json").read_text())["depths"]["56"]
    assert (rep["variants"]["rk4"]["finished"], rep["variants"]["rk4"]["planned"]) == (2, 3)
    assert (rep["variants"]["euler"]["finished"], rep["variants"]["euler"]["planned"]) == (3, 3)
    assert rep["variants"]["rk4"]["cpu_kinds"] == ["AMD EPYC (no bf16 instructions)",
                                                   "Intel Xeon (avx512_bf16, amx_bf16)", "not recorded"]
    assert rep["differences"]["RK4 vs Euler (raw)"]["test_error"]["verdict"] == "not tested"
    md = (out / "converged.md").read_text()
    assert "| rk4 | 2 of 3 |" in md and "| euler | 3 of 3 |" in md
    assert "| rk4-d56-s1 | AMD EPYC (no bf16 instructions) → Intel Xeon (avx512_bf16, amx_bf16) |" in md
    assert "RK4 vs Euler (raw) (rk4 − euler):" in md and "not tested (n=2/3)" in md
