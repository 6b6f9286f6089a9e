"""Tests of experiments/report.py (the study tables of docs/results.md) on hand-written run folders.

Runs are written in the schema ``run_fit`` writes (tests/test_compare.py ``write_run``), with accuracies, curves and
robustness rows chosen here; expected means and standard deviations come from ``statistics``. The accuracies are
chosen so that Welch's test has df = 2 (rk4 has no spread), where Student's t has a closed form: p = 1 − |t|/√(2 + t²),
97.5% quantile 0.95/√(2·0.975·0.025) (docs/design.md "Statistics").
"""

from __future__ import annotations

import csv
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

from ._compare_helpers import write_metrics, write_run

REPORT = Path(__file__).parents[1] / "experiments" / "report.py"
TEST_ACC = {"euler": [0.90, 0.91, 0.92], "rk4": [0.93, 0.93, 0.93], "midpoint": [0.89, 0.91, 0.93]}
ROBUST = {"euler": [(0.0, 90.0, 0.02), (0.1, 70.0, 0.10)], "rk4": [(0.0, 91.0, 0.03), (0.1, 75.0, 0.08)]}


def _report(study: str, pool: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPORT), study, str(pool), str(out)], capture_output=True, text=True,
                          timeout=300)


def test_ho_comparison_difference_spread_and_robustness(tmp_path):
    pool = tmp_path / "runs"
    for block, accs in TEST_ACC.items():
        for seed, acc in enumerate(accs):
            run = write_run(pool, block, 32, seed, acc, acc - 0.002)
            write_metrics(run, [0.5, 0.7, 0.8], [0.6, 0.75, acc - 0.002])
            (run / "analysis").mkdir()
            # rk4's folders as horesnet writes them now (fractions, analysis.json records_version 2), euler's as an
            # older horesnet did (percent, no manifest): the report reads both in percent (docs/analysis.md, Units)
            new = block == "rk4"
            if new:
                (run / "analysis" / "analysis.json").write_text(json.dumps(
                    {"studies": {"robustness": {"key": {}, "tables": ["robustness"], "records_version": 2}}}))
            with open(run / "analysis" / "robustness.csv", "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["sigma", "accuracy", "error", "ece", "loss"])
                for sigma, a, ece in ROBUST.get(block, []):
                    acc = a + seed
                    w.writerow([sigma, acc / 100 if new else acc, (100 - acc) / 100 if new else 100 - acc, ece, 1.0])
    proc = _report("ho_comparison", pool, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "out" / "ho_comparison.json").read_text())["depth 32"]
    e, r = [100 * a for a in TEST_ACC["euler"]], [100 * a for a in TEST_ACC["rk4"]]
    diff = summary["vs_euler"]["rk4"]
    # rk4 − euler = 93 − 91 = +2, se = √(1/3 + 0) -> t = 2√3 (t² = 12), df = 2, p = 1 − √(12/14)
    assert math.isclose(diff["difference"], statistics.fmean(r) - statistics.fmean(e), abs_tol=1e-9)
    assert math.isclose(diff["difference"], 2.0, abs_tol=1e-9)
    assert math.isclose(diff["df"], 2.0, rel_tol=1e-9)
    assert math.isclose(diff["p"], 1 - math.sqrt(12 / 14), rel_tol=1e-6)            # 0.0742
    half = 0.95 / math.sqrt(2 * 0.975 * 0.025) / math.sqrt(3)                        # 2.4841
    assert math.isclose(diff["ci_low"], 2 - half, rel_tol=1e-6) and math.isclose(diff["ci_high"], 2 + half,
                                                                                   rel_tol=1e-6)
    assert diff["verdict"] == "not significant" and (diff["n_a"], diff["n_b"]) == (3, 3)
    mid = summary["vs_euler"]["midpoint"]                  # same mean (91 %): t = 0, p = 1
    assert math.isclose(mid["difference"], 0.0, abs_tol=1e-9) and math.isclose(mid["p"], 1.0, rel_tol=1e-9)
    assert mid["verdict"] == "not significant"
    pairs = {(d["a"], d["b"]): d for d in summary["all_pairs"]}
    assert math.isclose(pairs[("rk4-32", "midpoint-32")]["difference"], 2.0, abs_tol=1e-9)
    md = (tmp_path / "out" / "d32" / "comparison.md").read_text()
    # Holm over the 3 tested pairs (p 0.074, 1, 0.225): the smallest p times 3
    holm = 3 * (1 - math.sqrt(12 / 14))
    assert (f"| rk4-32 | euler-32 | +2.00 | [{2 - half:+.2f}, {2 + half:+.2f}] | 0.074 | {holm:.3f} | 3/3 | "
            "not significant | not significant |") in md
    # robustness at σ = 0.1: accuracy rk4 75/76/77 vs euler 70/71/72 (variance 1 each): +5, t² = 37.5, df = 4,
    # p = 2(1/2 − (3/8)x(1 − x²/12)) with x = |t|/√(1 + t²/4); ECE 0.08 vs 0.10 on every seed: zero spread in both
    # arms, so the interval is the point and p = 0
    noisy_vs = summary["robustness_vs_euler"]["accuracy"]["rk4 − euler, σ=0.1"]
    x = math.sqrt(37.5) / math.sqrt(1 + 37.5 / 4)
    assert math.isclose(noisy_vs["difference"], 5.0) and math.isclose(noisy_vs["df"], 4.0)
    assert math.isclose(noisy_vs["p"], 2 * (0.5 - 3 / 8 * x * (1 - x * x / 12)), rel_tol=1e-6)   # 0.0027
    ece_vs = summary["robustness_vs_euler"]["ece"]["rk4 − euler, σ=0.1"]
    assert math.isclose(ece_vs["difference"], -0.02, abs_tol=1e-12) and ece_vs["verdict"] == "significant"
    assert "rk4 − euler, σ=0.1: -0.020 [-0.020, -0.020], p<0.001 (n=3/3), significant" in (
        tmp_path / "out" / "d32" / "robustness.md").read_text()
    # training error per epoch: the curves are the same for every variant, so each difference is 0
    epochs = summary["training_error_vs_euler"]["rk4"]
    assert [d["epoch"] for d in epochs] == [1, 2, 3]
    assert math.isclose(epochs[0]["difference"], 0.0, abs_tol=1e-9) and epochs[0]["verdict"] == "not significant"
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
            write_metrics(run, [0.3, acc], [0.4, acc])
            run.rename(pool / f"{kind}-d{depth}-s{seed}")
    proc = _report("degradation", pool, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    rows = {r["net"]: r for r in json.loads((tmp_path / "out" / "degradation.json").read_text())}
    assert set(rows) == {"plain-20", "plain-56", "ResNet-20", "ResNet-56"}
    expected = [100 * (1 - a) for a in final_train[("plain", 56)]]
    assert math.isclose(rows["plain-56"]["train_error_mean"], statistics.fmean(expected))
    assert math.isclose(rows["plain-56"]["train_error_std"], statistics.stdev(expected))
    assert (tmp_path / "out" / "degradation.png").is_file()
    # two seeds per net: every difference is "not tested" (the mean difference, 28 − 16.5, is still given)
    diffs = json.loads((tmp_path / "out" / "degradation_differences.json").read_text())
    plain = diffs["plain-56 − plain-20"]["train_error"]
    assert math.isclose(plain["difference"], statistics.fmean(expected) - statistics.fmean([16.0, 17.0]))
    assert plain["verdict"] == "not tested" and plain["p"] is None and (plain["n_a"], plain["n_b"]) == (2, 2)
    assert math.isclose(diffs["ResNet-56 − ResNet-20"]["train_error_epoch1"]["difference"], 0.0, abs_tol=1e-9)
    assert "plain-56 − plain-20: +11.50, not tested (n=2/2)" in (tmp_path / "out" / "degradation.md").read_text()


def test_empty_pool_is_an_error(tmp_path):
    (tmp_path / "runs").mkdir()
    proc = _report("ho_comparison", tmp_path / "runs", tmp_path / "out")
    assert proc.returncode == 1 and "report.py: no finished HO comparison runs" in proc.stderr
    assert not (tmp_path / "out").exists()
