"""benchmarks/transformer_speed.py --quick writes its report: the torch twin agrees with the Euler stack, the
ratios are the ones its medians give (no timed assertion)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_quick_report(tmp_path):
    out = tmp_path / "t.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.transformer_speed", "--quick", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rep = json.loads(out.read_text())
    med = rep["median_s"]
    assert set(med) == {"euler_train", "torch_train", "euler_eval", "torch_eval", "heun_layers_train"}
    assert rep["max_abs_output_difference"] < 1e-5
    assert rep["ratio_to_torch"]["train"] == pytest.approx(med["euler_train"] / med["torch_train"])
    assert rep["heun_layers_to_euler_train"] == pytest.approx(med["heun_layers_train"] / med["euler_train"])
    assert rep["tokens_per_s"]["euler_train"] == pytest.approx(4 * 16 / med["euler_train"])
    cpu = rep["cpu_time"]
    assert cpu["ratio_to_torch"]["eval"] == pytest.approx(cpu["median_s"]["euler_eval"] / cpu["median_s"]["torch_eval"])


def test_bad_option_is_refused():
    proc = subprocess.run([sys.executable, "-m", "benchmarks.transformer_speed", "--layers", "0"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--layers must be a positive integer" in proc.stderr
