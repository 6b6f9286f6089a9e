"""Tests of experiments/report.py (the study tables of README "Results") on hand-written run folders.

Runs are written in the schema ``run_fit`` writes (tests/test_compare.py ``write_run``), with accuracies, curves and
robustness rows chosen here; expected means, standard deviations and standard errors come from ``statistics``.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from test_compare import write_run  # noqa: E402

REPORT = Path(__file__).parents[1] / "experiments" / "report.py"
TEST_ACC = {"euler": [0.900, 0.905, 0.898], "rk4": [0.912, 0.915, 0.913], "midpoint": [0.901, 0.899, 0.904]}
ROBUST = {"euler": [(0.0, 90.0, 0.02), (0.1, 70.0, 0.10)], "rk4": [(0.0, 91.0, 0.03), (0.1, 75.0, 0.08)]}


def _metrics(run: Path, train_acc: list[float], val_acc: list[float]) -> None:
    with open(run / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "step", "train/acc1", "val/acc1", "train/loss_step"])
        w.writerow(["", 10, "", "", ""])                       # lr-monitor row: no epoch
        for e, (t, v) in enumerate(zip(train_acc, val_acc, strict=True)):
            w.writerow([e, 10 * e, "", "", 1.0])
            w.writerow([e, 10 * e, t, "", ""])
            w.writerow([e, 10 * e, "", v, ""])


def _report(study: str, pool: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPORT), study, str(pool), str(out)], capture_output=True, text=True,
                          timeout=300)


def test_ho_comparison_difference_spread_and_robustness(tmp_path):
    pool = tmp_path / "runs"
    for block, accs in TEST_ACC.items():
        for seed, acc in enumerate(accs):
            run = write_run(pool, block, 32, seed, acc, acc - 0.002)
            _metrics(run, [0.5, 0.7, 0.8], [0.6, 0.75, acc - 0.002])
            (run / "analysis").mkdir()
            with open(run / "analysis" / "robustness.csv", "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["sigma", "accuracy", "error", "ece", "loss"])
                for sigma, a, ece in ROBUST.get(block, []):
                    w.writerow([sigma, a + seed, 100 - a - seed, ece, 1.0])
    proc = _report("ho_comparison", pool, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "out" / "ho_comparison.json").read_text())["depth 32"]
    e, r = [100 * a for a in TEST_ACC["euler"]], [100 * a for a in TEST_ACC["rk4"]]
    diff = summary["vs_euler"]["rk4"]
    assert math.isclose(diff["difference"], statistics.fmean(r) - statistics.fmean(e), abs_tol=1e-9)
    se = math.sqrt(statistics.variance(e) / 3 + statistics.variance(r) / 3)
    assert math.isclose(diff["standard_error"], se, rel_tol=1e-9)
    assert diff["exceeds_2se"] is True                     # 1.23 points vs a standard error of ~0.24
    assert summary["vs_euler"]["midpoint"]["exceeds_2se"] is False
    assert summary["test_accuracy"]["rk4"]["seeds"] == [0, 1, 2]
    noisy = {row["sigma"]: row for row in summary["robustness"]["rk4"]}[0.1]
    assert math.isclose(noisy["accuracy_mean"], statistics.fmean([75.0, 76.0, 77.0]))
    assert "midpoint" not in summary["robustness"]          # no robustness.csv: not in the table
    for name in ("comparison.md", "comparison.csv", "robustness.md", "robustness.png", "convergence.png"):
        assert (tmp_path / "out" / "d32" / name).is_file(), name
    assert "Fairness: passed" in (tmp_path / "out" / "d32" / "comparison.md").read_text()


def test_degradation_table_uses_the_last_epoch_training_error(tmp_path):
    pool = tmp_path / "runs"
    final_train = {("euler", 20): [0.85, 0.86], ("euler", 56): [0.88, 0.87],
                   ("plain", 20): [0.84, 0.83], ("plain", 56): [0.70, 0.74]}
    for (kind, depth), accs in final_train.items():
        for seed, acc in enumerate(accs):
            extra = ("shortcut=plain",) if kind == "plain" else ()
            run = write_run(pool, "euler", depth, seed, acc, acc, extra=extra, params=270_000 if depth == 20 else
                            853_018)
            _metrics(run, [0.3, acc], [0.4, acc])
            run.rename(pool / f"{kind}-d{depth}-s{seed}")
    proc = _report("degradation", pool, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    rows = {r["net"]: r for r in json.loads((tmp_path / "out" / "degradation.json").read_text())}
    assert set(rows) == {"plain-20", "plain-56", "ResNet-20", "ResNet-56"}
    expected = [100 * (1 - a) for a in final_train[("plain", 56)]]
    assert math.isclose(rows["plain-56"]["train_error_mean"], statistics.fmean(expected))
    assert math.isclose(rows["plain-56"]["train_error_std"], statistics.stdev(expected))
    assert (tmp_path / "out" / "degradation.png").is_file()


def test_empty_pool_is_an_error(tmp_path):
    (tmp_path / "runs").mkdir()
    proc = _report("ho_comparison", tmp_path / "runs", tmp_path / "out")
    assert proc.returncode == 1 and "report.py: no finished HO comparison runs" in proc.stderr
    assert not (tmp_path / "out").exists()
