"""The benchmark harness, through the CPU fallback of ``benchmarks/gpu_check.sh`` (tiny settings, CUDA hidden):
every JSON file is written and well formed, ratios are the ones the recorded step times and memory give, and bad
command lines are refused naming the valid choices. Nothing here asserts on a time (docs/benchmarks_method.md)."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ._data_helpers import IDX_FILES, idx_bytes

REPO = Path(__file__).resolve().parent.parent


def _env() -> dict:
    return {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHON": sys.executable,
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture(scope="module")
def check(tmp_path_factory) -> Path:
    """Run the fallback once on a small stand-in Fashion-MNIST (gzipped IDX, 200 + 50 images)."""
    data = tmp_path_factory.mktemp("fmnist")
    rng = np.random.default_rng(0)
    for name, n in zip(IDX_FILES, (200, 200, 50, 50), strict=True):
        arr = rng.integers(0, 10, n) if "labels" in name else rng.integers(0, 256, (n, 28, 28))
        (data / (name + ".gz")).write_bytes(gzip.compress(idx_bytes(arr), compresslevel=1))
    out = tmp_path_factory.mktemp("gpu_check")
    proc = subprocess.Popen(["bash", str(REPO / "benchmarks" / "gpu_check.sh"), str(out), str(data)], env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        stdout, _ = proc.communicate(timeout=900)  # seconds on a quiet machine; a hang guard
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the script's children too
    assert proc.returncode == 0, stdout
    assert "CPU fallback" in stdout
    return out


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_fallback_writes_every_file(check):
    overview = _json(check / "gpu_check.json")
    assert set(overview["parts"]) == {"gpu_tests", "fit", "throughput"}
    logs = {k: (check / f"{k}.log").read_text()[-3000:] for k in overview["parts"]}
    assert all(p["rc"] == 0 for p in overview["parts"].values()), logs
    assert overview["ok"] is True
    assert {"gpu_tests.json", "fit.json", "throughput.json"} <= set(overview["files"])
    rows = [line.split(" | ")[0] for line in (check / "throughput.md").read_text().splitlines()]
    assert {"| baseline56/fp32", "| euler56/fp32", "| euler56/fp32/ckpt"} <= set(rows)


def test_gpu_tests_skip_with_reason(check):
    tests = _json(check / "gpu_tests.json")
    assert tests["status"] == "skipped" and tests["counts"]["skipped"] == len(tests["tests"]) > 10
    assert all("CUDA" in t["message"] for t in tests["tests"])
    assert any("test_training_steps_do_not_sync" in t["name"] for t in tests["tests"])


def test_fit_summary(check):
    fit = _json(check / "fit.json")
    assert fit["status"] == "finished" and fit["data"] == "fashion_mnist" and fit["epochs_done"] == 1
    assert 0.0 <= fit["test_acc1"] <= 1.0
    assert fit["train_time_per_epoch_s"] == pytest.approx(fit["train_time_s"] / fit["epochs_done"])


def _median_clean(rounds):
    clean = [s["s"] for r in rounds for s in r if not s["disturbed"]]
    every = [s["s"] for r in rounds for s in r]
    return statistics.median(clean if len(clean) >= max(3, len(every) // 4) or len(clean) == len(every) else every)


def test_throughput_report(check):
    rep = _json(check / "throughput.json")
    assert re.fullmatch(r"[0-9a-f]{40}", rep["git"]["commit"]) and rep["device"] == "cpu" and rep["torch"]
    assert set(rep["results"]) == {"baseline56/fp32", "euler56/fp32", "euler56/fp32/ckpt", "euler56/fp32/ckpt12"}
    for r in rep["results"].values():
        for kind in ("train", "eval") if not r["mode"].startswith("ckpt") else ("train",):
            steps = [s for rnd in r[kind]["rounds"] for s in rnd]
            assert len(steps) == r[kind]["steps"] >= rep["steps"] and all(s["s"] > 0 for s in steps)
            assert r[kind]["median_s"] == pytest.approx(_median_clean(r[kind]["rounds"]))
            assert r[kind]["img_s"] == pytest.approx(rep["batch"] / r[kind]["median_s"])
        assert r["memory"]["saved_bytes"] > 0
    assert "eval" not in rep["results"]["euler56/fp32/ckpt"]
    ratios = {(x["cell"], x["reference"]): x for x in rep["ratios"]}
    assert set(ratios) == {("euler56/fp32", "baseline56/fp32"), ("euler56/fp32/ckpt", "euler56/fp32"),
                           ("euler56/fp32/ckpt12", "euler56/fp32")}
    for (a, b), x in ratios.items():
        ra, rb = rep["results"][a], rep["results"][b]
        for kind in x["kinds"]:
            assert x[f"{kind}_ratio"] == pytest.approx(ra[kind]["median_s"] / rb[kind]["median_s"])
            assert x[f"{kind}_pass"] == (x[f"{kind}_ratio"] <= x["target"])
        assert x["saved_activation_ratio"] == pytest.approx(ra["memory"]["saved_bytes"] / rb["memory"]["saved_bytes"])
    ckpt = ratios[("euler56/fp32/ckpt", "euler56/fp32")]
    assert ckpt["target"] == 1.35 and ckpt["memory_target"] == 0.5 and ckpt["kinds"] == ["train"]
    assert ckpt["saved_activation_ratio"] < 1  # checkpointing keeps fewer activations (deterministic bytes)
    # the step's real peak (CPU allocator events) is lower with checkpointing (at this smoke size stages 1-2 and
    # every stage differ by a few KB, within the allocator's thread-pool noise: not compared with each other)
    peak = {c: rep["results"][c]["memory"]["cpu_step_peak_bytes"] for c in rep["results"]}
    assert max(peak["euler56/fp32/ckpt"], peak["euler56/fp32/ckpt12"]) < peak["euler56/fp32"]
    assert ckpt["step_peak_ratio"] == pytest.approx(peak["euler56/fp32/ckpt"] / peak["euler56/fp32"])


def test_bad_command_lines_name_the_choices():
    code = ("import sys\nfrom benchmarks import throughput as t\n"
            "for argv in (['--suite', 'speed'], ['--variants', 'rk5_56'], ['--precisions', 'fp16']):\n"
            "    try:\n        t.parse_args(argv)\n    except SystemExit as e:\n        print('exit', e.code)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.stdout.split() == ["exit", "2"] * 3, proc.stderr
    assert "unknown speed; choose from throughput, compile, checkpointing" in proc.stderr
    assert "unknown rk5_56; choose from baseline56, euler56" in proc.stderr
    assert "unknown fp16; choose from fp32, bf16cl" in proc.stderr


def test_euler_moves_no_more_bytes_than_the_hand_written_resnet():
    """Besides its convolutions, horesnet's Euler network does what the hand-written ResNet does: the bytes its
    other ops move in a training step (BatchNorm, ReLU, shortcut, adds) are no more than the baseline's, and the RK4
    network's fused combination moves fewer bytes than its plain autograd one."""
    from benchmarks.elementwise_traffic import measure

    base = measure("baseline", 20, False, 4)
    euler = measure("euler", 20, True, 4)
    assert 0 < euler["non_gemm_MB"] <= base["non_gemm_MB"]
    assert euler["MB"] <= base["MB"]
    assert measure("rk4", 32, True, 4)["MB"] < measure("rk4", 32, False, 4)["MB"]


def test_stage_combination_forms_agree_with_an_independent_sum(tmp_path):
    """The three forward combinations of ``benchmarks.stacked_combination`` (add chain, stacked matrix-vector
    product, one compiled kernel per stage) give each stage input as an explicit float64 sum over the tableau's
    rows; the script's own run writes its medians for every form (no time is asserted)."""
    from benchmarks.stacked_combination import chain, one_pass, one_pass_kernels, passes, stacked, tableau

    a, b = tableau("rk4")
    # RK4: stage rows with 1, 1, 1 terms and b with 4; the stacked prefixes read 1, 2, 3, 4 increments
    assert passes(a, b) == {"chain": 3 * 7, "one_pass": 3 + 3 + 3 + 6, "stacked": 3 + 4 + 5 + 6 + 2 * 4}
    torch = pytest.importorskip("torch")
    gen = torch.Generator().manual_seed(1)
    base, *ks = (torch.randn(300, generator=gen, dtype=torch.float64) for _ in range(1 + a.shape[0]))
    want = [base + sum(float(row[j]) * ks[j] for j in range(len(ks))) for row in [*a[1:], b]]
    a, b = a.double(), b.double()
    for got in (chain(base, ks, a, b), stacked(base, ks, a, b), one_pass(base, ks, one_pass_kernels(a, b, len(ks)))):
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)
    out = tmp_path / "combination.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.stacked_combination", "--scheme", "midpoint",
                           "--numel", "4096", "--repeats", "3", "--out", str(out)],
                          cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    rep = _json(out)
    assert set(rep["median_ms"]) == {"chain", "stacked", "one_pass"} and rep["scheme"] == "midpoint"
    assert rep["ratio_to_chain"]["chain"] == 1.0
    assert all(v > 0 for v in rep["median_ms"].values())
    assert rep["passes"] == {"chain": 3 * 2, "one_pass": 3 + 3, "stacked": 3 + 4 + 2 * 2}  # 1-term rows: a21, b2


@pytest.mark.parametrize("module", ["data_pipeline", "lesion_speed"])
def test_two_way_benchmarks_write_their_report(tmp_path, module):
    """The data-pipeline and lesion-speed benchmarks (``--quick``, CPU) write a report whose ratio is the one its
    recorded medians give, with every timed step kept; the lesion study's two modes give identical errors."""
    out = tmp_path / f"{module}.json"
    proc = subprocess.run([sys.executable, "-m", f"benchmarks.{module}", "--quick", "--out", str(out)], cwd=REPO,
                          env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    rep = _json(out)
    assert rep["benchmark"] == module and rep["device"] == "cpu" and rep["git"]["commit"]
    a, b = ("train", "pipeline") if module == "data_pipeline" else ("reuse", "naive")
    for side in (a, b):
        steps = [r["s"] for rnd in rep[side]["rounds"] for r in rnd]
        assert rep[side]["steps"] == len(steps) >= 1
        assert rep[side]["median_s"] == pytest.approx(_median_clean(rep[side]["rounds"]))
    assert rep["ratio"] == pytest.approx(rep[a]["median_s"] / rep[b]["median_s"])
    if module == "lesion_speed":
        assert rep["identical_errors"] is True and rep["lesions"] == 9  # ResNet-20: 9 blocks, one lesion each


def test_python_overhead_counts_modules_and_compares_with_the_baseline(tmp_path):
    """The overhead benchmark counts each network's modules (checked against a fresh build) and states every time
    as a ratio to the hand-written net's, measured in the same rounds."""
    from horesnet import build_model

    out = tmp_path / "overhead.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.python_overhead", "--rounds", "2", "--calls", "1",
                           "--out", str(out)], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    nets = _json(out)["networks"]
    assert nets["euler56"]["modules"] == sum(1 for _ in build_model(block="euler", depth=56).modules())
    assert nets["rk4_56"]["modules"] < nets["euler56"]["modules"]  # 27 units either way, fewer blocks
    for r in nets.values():
        for k in ("mode_switch", "forward"):
            assert r[f"{k}_ms"] > 0
            assert r["vs_baseline"][k] == pytest.approx(r[f"{k}_ms"] / nets["baseline56"][f"{k}_ms"])


@pytest.mark.parametrize("module, args, message", [
    ("stacked_combination", ["--scheme", "nosuch"], "unknown scheme 'nosuch'; valid schemes: euler"),
    ("stacked_combination", ["--repeats", "1"], "--repeats >= 2"),
    ("python_overhead", ["--calls", "0"], "--calls must be >= 1, got 0"),
])
def test_design_benchmarks_reject_bad_options(module, args, message, tmp_path):
    out = tmp_path / "never.json"
    proc = subprocess.run([sys.executable, "-m", f"benchmarks.{module}", *args, "--out", str(out)], cwd=REPO,
                          env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()
