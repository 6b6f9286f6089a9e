"""``benchmarks.throughput --processes K``: the run repeated in fresh processes and pooled. The interval is checked
against scipy's one-sample t interval, the pooled report against the processes' own step records; a failing
process leaves no report. Nothing here asserts on a time (docs/benchmarks_method.md)."""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from benchmarks import _processes as procs
from benchmarks.throughput import PRECISIONS, _strip, ratio_specs, suite_cells

REPO = Path(__file__).resolve().parent.parent


TINY = ["--tiny", "--quick", "--suite", "throughput", "--precisions", "fp32", "--variants", "baseline56,euler56"]


def _run(args, tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "benchmarks.throughput", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("ratios", [[1.02, 0.97, 1.05], [1.1, 1.3, 0.9, 1.0, 1.2], [0.5, 0.5001, 0.4999]])
def test_ratio_interval_is_scipys_t_interval_on_logs(ratios):
    got = procs.ratio_interval(ratios)
    logs = np.log(ratios)
    ci = stats.ttest_1samp(logs, 0.0).confidence_interval(0.95)
    assert got["n"] == len(ratios) and got["verdict"] == "tested"
    assert got["geometric_mean"] == pytest.approx(stats.gmean(ratios), rel=1e-12)
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((math.exp(ci.low), math.exp(ci.high)), rel=1e-12)


def test_ratio_interval_needs_three_processes_and_skips_missing_ratios():
    got = procs.ratio_interval([1.1, None, 0.9])
    assert got["n"] == 2 and got["verdict"] == "not tested" and got["ci_low"] is None
    assert got["geometric_mean"] == pytest.approx(math.sqrt(1.1 * 0.9))
    assert procs.against_target(got, 1.03) is None


@pytest.mark.parametrize(("low", "high", "verdict"), [(0.95, 1.02, "below"), (1.031, 1.2, "above"),
                                                      (0.99, 1.05, "undecided"), (0.9, 1.03, "below")])
def test_against_target(low, high, verdict):
    assert procs.against_target({"ci_low": low, "ci_high": high}, 1.03) == verdict
    assert procs.against_target({"ci_low": low, "ci_high": high}, None) is None


def test_children_get_the_command_line_without_the_parents_own_options():
    argv = ["--suite", "throughput", "--processes", "4", "--out=x.json", "--markdown", "t.md", "--rounds", "2",
            "--build-order", "reversed"]
    assert _strip(argv, ("--processes", "--out", "--markdown", "--build-order")) == ["--suite", "throughput",
                                                                                      "--rounds", "2"]
    assert [procs.build_order(i) for i in range(4)] == ["forward", "reversed", "forward", "reversed"]


@pytest.mark.parametrize("suite, mode, group", [("compile", "compiled", "compile"),
                                               ("checkpointing", "ckpt", "checkpointing")])
def test_compile_and_checkpointing_suites_run_in_every_selected_precision(suite, mode, group):
    """Each precision gets its own compiled / checkpointed cells, compared with the eager cell of that precision."""
    for precisions in (list(PRECISIONS), ["bf16cl"]):
        cells = suite_cells([suite], ["euler56", "rk8_92"], ["euler56", "rk8_92"], precisions)
        assert {c[1] for c in cells} == set(precisions)
        specs = [s for s in ratio_specs(cells) if s["group"] == group and s["cell"].endswith(f"/{mode}")]
        assert sorted((s["cell"], s["reference"]) for s in specs) == sorted(
            (f"{v}/{p}/{mode}", f"{v}/{p}") for v in ("euler56", "rk8_92") for p in precisions)


def test_pooled_report_holds_every_process(tmp_path):
    out, md = tmp_path / "pooled.json", tmp_path / "pooled.md"
    proc = _run([*TINY, "--processes", "3", "--out", str(out), "--markdown", str(md)], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rep = json.loads(out.read_text())
    assert rep["processes"] == 3 and rep["build_order"] == ["forward", "reversed", "forward"]
    assert [p["build_order"] for p in rep["per_process"]] == rep["build_order"]
    for name, cell in rep["results"].items():
        assert len(cell["memory_per_process"]) == 3 and len(cell["first_call_s_per_process"]) == 3
        for kind in ("train", "eval"):
            rounds = cell[kind]["rounds"]
            assert len(rounds) == 3 * rep["rounds"], name  # one list of steps per round per process
            clean = [s["s"] for r in rounds for s in r if not s["disturbed"]]
            every = [s["s"] for r in rounds for s in r]
            use = clean if len(clean) >= max(3, len(every) // 4) or len(clean) == len(every) else every
            assert cell[kind]["median_s"] == pytest.approx(statistics.median(use))
    (row,) = rep["ratios"]
    assert (row["cell"], row["reference"]) == ("euler56/fp32", "baseline56/fp32")
    for kind in ("train", "eval"):
        per = row["per_process"][kind]
        assert len(per) == 3 and all(r is None or r > 0 for r in per)
        b = row["between"][kind]
        kept = [r for r in per if r is not None]
        assert b["n"] == len(kept)
        if kept:
            assert b["geometric_mean"] == pytest.approx(stats.gmean(kept))
        assert b["vs_target"] == procs.against_target(b, 1.03)
        a, r = rep["results"]["euler56/fp32"][kind], rep["results"]["baseline56/fp32"][kind]
        assert row[f"{kind}_ratio"] == pytest.approx(a["median_s"] / r["median_s"])
    assert rep["interference"]["timed"] == sum(len(r) for c in rep["results"].values()
                                               for k in ("train", "eval") for r in c[k]["rounds"])
    table = md.read_text()
    assert "in each of 3 fresh processes" in table and "train between processes" in table


def test_a_failing_process_leaves_no_report(tmp_path):
    out = tmp_path / "never.json"
    proc = _run([*TINY, "--processes", "2", "--device", "cuda:0", "--out", str(out)], tmp_path)
    assert proc.returncode == 1
    assert "benchmark process 1/2 failed" in proc.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("settle", [0, 1, 3])
def test_a_step_calls_the_function_settle_plus_one_times(settle):
    """No hidden calls: a round of ``warmup`` passes and ``steps`` timed steps calls each function exactly
    ``warmup + steps * (settle + 1)`` times (torch.utils.benchmark's ``timeit(1)`` made it 3 calls per step)."""
    import torch

    from benchmarks import _harness as h

    calls = {"a": 0, "b": 0}

    def counter(name):
        def fn():
            calls[name] += 1
        return fn

    steppers = {n: h.Stepper(counter(n), torch.device("cpu"), settle=settle) for n in calls}
    rounds = h.interleave(steppers, rounds=2, steps=3, warmup=1, extra=0, other_cpu_max=float("inf"), quiet_wait=0.0,
                          log=lambda *a, **k: None)
    assert calls == {"a": 2 * (1 + 3 * (settle + 1)), "b": 2 * (1 + 3 * (settle + 1))}
    assert all(len(rnd) == 3 and all(r["s"] >= 0 for r in rnd) for n in calls for rnd in rounds[n])
