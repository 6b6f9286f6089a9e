"""Tests of horesnet.compare: mean ± std over seeds, pairwise differences (CI, Welch p), refusal of unfair comparisons.

The run folders are written by hand in the schema ``run_fit`` writes (summary.json with config/model/val/test),
with accuracies chosen here; expected means and standard deviations come from Python's ``statistics`` module.
The pairwise differences use accuracies chosen so that Welch's df is exactly 2 (one arm without spread), where
Student's t has a closed form (docs/design.md "Statistics"; tests/test_stats.py): p = 1 − |t|/√(2 + t²) and the
97.5% quantile is 0.95/√(2·0.975·0.025).
Parameter counts are He et al. 2015's (Table 6, option A): ResNet-20 0.27M (269,722), ResNet-32 0.46M (464,154).
"""

from __future__ import annotations

import csv
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from horesnet.compare import main
from horesnet.comparison.table import compare
from horesnet.errors import ConfigError

from ._compare_helpers import write_run

ACC = {  # (block, depth) -> per-seed (test acc1, val acc1) as fractions
    ("euler", 20): [(0.9150, 0.9120), (0.9172, 0.9160), (0.9131, 0.9088)],
    ("midpoint", 20): [(0.9203, 0.9180), (0.9188, 0.9202), (0.9241, 0.9196)],
    ("midpoint", 32): [(0.9290, 0.9262), (0.9310, 0.9301), (0.9275, 0.9280)],
}

def fair_set(root: Path) -> Path:
    for block in ("euler", "midpoint"):
        for seed, (t, v) in enumerate(ACC[(block, 20)]):
            write_run(root / "sweep", block, 20, seed, t, v, curve=seed == 0)
    return root / "sweep"


def test_fair_comparison_mean_std(tmp_path):
    root = fair_set(tmp_path)
    rows, problems, out = compare([str(root)])
    assert problems == []
    assert out == root / "comparison"
    for name in ("comparison.md", "comparison.csv", "comparison.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0
    assert (out / "comparison.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(out / "comparison.csv", newline="") as f:
        table = {r["block"]: r for r in csv.DictReader(f)}
    assert set(table) == {"euler", "midpoint"}
    md = (out / "comparison.md").read_text()
    assert "NOT FAIR" not in md and "passed" in md
    for block in ("euler", "midpoint"):
        tests = [100 * t for t, _ in ACC[(block, 20)]]
        vals = [100 * v for _, v in ACC[(block, 20)]]
        row = table[block]
        # the CSV stores fractions (docs/analysis.md, "Units"); the Markdown and the returned rows show percent
        assert float(row["test_acc_mean"]) == pytest.approx(statistics.mean(tests) / 100, abs=1e-11)
        assert float(row["test_acc_std"]) == pytest.approx(statistics.stdev(tests) / 100, abs=1e-11)
        assert float(row["val_acc_mean"]) == pytest.approx(statistics.mean(vals) / 100, abs=1e-11)
        assert float(row["val_acc_std"]) == pytest.approx(statistics.stdev(vals) / 100, abs=1e-11)
        assert int(row["seeds"]) == 3 and int(row["params"]) == 269_722 and int(row["depth"]) == 20
        assert f"{statistics.mean(tests):.2f} ± {statistics.stdev(tests):.2f}" in md
        assert f"{statistics.mean(vals):.2f} ± {statistics.stdev(vals):.2f}" in md
        returned = next(r for r in rows if r["block"] == block)
        assert returned["seed_list"] == [0, 1, 2]
        assert returned["test_acc_mean"] == pytest.approx(statistics.mean(tests))
    # an explicit output folder
    _, _, out2 = compare([str(root)], out=str(tmp_path / "elsewhere"))
    assert out2 == tmp_path / "elsewhere" and (out2 / "comparison.csv").is_file()


T975_DF2 = 0.95 / math.sqrt(2 * 0.975 * 0.025)     # 4.3027, Student's t quantile for df = 2


def test_pairwise_differences_ci_and_p(tmp_path, capsys):
    # euler 90/91/92 % (variance 1), midpoint 95 % on every seed, rk4 91/92/93 %: against euler, midpoint is
    # +4 with se = 1/√3, t = 4√3 (t² = 48), df = 2; rk4 is +1 with se = √(2/3), t² = 1.5, df = 4
    accs = {"euler": [0.90, 0.91, 0.92], "midpoint": [0.95, 0.95, 0.95], "rk4": [0.91, 0.92, 0.93]}
    for block, values in accs.items():
        for seed, acc in enumerate(values):
            write_run(tmp_path / "runs", block, 20, seed, acc, acc)
    rows, _, out = compare([str(tmp_path / "runs")])
    with open(out / "comparison_pairs.csv", newline="") as f:
        pairs = {(r["a"], r["b"]): r for r in csv.DictReader(f)}
    assert list(pairs) == [("midpoint-20", "euler-20"), ("rk4-20", "euler-20"), ("rk4-20", "midpoint-20")]
    mid = pairs[("midpoint-20", "euler-20")]
    half = T975_DF2 / math.sqrt(3)                                          # 2.4841
    assert float(mid["difference"]) == pytest.approx(0.04)  # files: fractions; the Markdown: points
    assert float(mid["df"]) == pytest.approx(2.0)
    assert float(mid["p"]) == pytest.approx(1 - math.sqrt(48 / 50), rel=1e-6)      # 0.0202
    assert (float(mid["ci_low"]), float(mid["ci_high"])) == pytest.approx(((4 - half) / 100, (4 + half) / 100),
                                                                          rel=1e-6)
    assert mid["verdict"] == "significant" and mid["reference"] == "True" and (mid["n_a"], mid["n_b"]) == ("3", "3")
    # df = 4: p = 2(1/2 − (3/8)x(1 − x²/12)), x = |t|/√(1 + t²/4)
    x = math.sqrt(1.5) / math.sqrt(1 + 1.5 / 4)
    rk4 = pairs[("rk4-20", "euler-20")]
    assert float(rk4["p"]) == pytest.approx(2 * (0.5 - 3 / 8 * x * (1 - x * x / 12)), rel=1e-6)   # 0.273
    assert rk4["verdict"] == "not significant"
    assert float(pairs[("rk4-20", "midpoint-20")]["difference"]) == pytest.approx(-0.03)
    assert pairs[("rk4-20", "midpoint-20")]["reference"] == "False"
    md = (out / "comparison.md").read_text()
    assert (f"| midpoint-20 | euler-20 | +4.00 | [{4 - half:+.2f}, {4 + half:+.2f}] | "
            f"{1 - math.sqrt(0.96):.3f} | 0.061 | 3/3 | significant | not significant |") in md
    assert "| rk4-20 | euler-20 | +1.00 |" in md and "not significant |" in md
    assert "3 pairs are tested here" in md
    saved = json.loads((out / "comparison.json").read_text())
    # Holm-Bonferroni by hand: raw p 0.0202 (midpoint-euler), 0.273 (rk4-euler), 0.0351 (rk4-midpoint); sorted:
    # 3 x 0.0202, max(that, 2 x 0.0351), max(that, 1 x 0.273)
    raw = {(d["a"], d["b"]): d["p"] for d in saved["differences"]}
    p_mid, p_rk4, p_rm = raw[("midpoint-20", "euler-20")], raw[("rk4-20", "euler-20")], raw[("rk4-20", "midpoint-20")]
    assert p_rm == pytest.approx(1 - math.sqrt(27 / 29), rel=1e-6)  # t^2 = 27, df = 2
    holm = {(d["a"], d["b"]): d["p_holm"] for d in saved["differences"]}
    assert holm[("midpoint-20", "euler-20")] == pytest.approx(3 * p_mid)
    assert holm[("rk4-20", "midpoint-20")] == pytest.approx(max(3 * p_mid, 2 * p_rm))
    assert holm[("rk4-20", "euler-20")] == pytest.approx(max(3 * p_mid, 2 * p_rm, p_rk4))
    assert [d["verdict_holm"] for d in saved["differences"]] == ["not significant"] * 3
    assert [d["a"] for d in saved["differences"]] == ["midpoint-20", "rk4-20", "rk4-20"]
    assert saved["variants"][0]["test_acc_seeds"] == [0.9, 0.91, 0.92]  # fractions, clean digits
    assert saved["fairness_problems"] == []
    assert main([str(tmp_path / "runs"), f"out={tmp_path / 'o'}"]) == 0
    assert "| midpoint-20 | euler-20 | +4.00 |" in capsys.readouterr().out


def test_differences_without_euler_or_enough_seeds(tmp_path):
    # no Euler variant: the first row is the reference; two seeds in an arm: "not tested", no CI or p
    for seed, acc in enumerate([0.90, 0.92]):
        write_run(tmp_path / "runs", "rk4", 20, seed, acc, acc)
    for seed, acc in enumerate([0.93, 0.94, 0.95]):
        write_run(tmp_path / "runs", "midpoint", 20, seed, acc, acc)
    _, _, out = compare([str(tmp_path / "runs")])
    saved = json.loads((out / "comparison.json").read_text())["differences"]
    assert len(saved) == 1
    d = saved[0]
    assert (d["a"], d["b"], d["reference"]) == ("rk4-20", "midpoint-20", True)
    assert d["difference"] == pytest.approx(0.91 - 0.94)
    assert d["verdict"] == "not tested" and d["p"] is None and d["ci_low"] is None and (d["n_a"], d["n_b"]) == (2, 3)
    assert "| rk4-20 | midpoint-20 | -3.00 | n/a | n/a | n/a | 2/3 | not tested | n/a |" in \
        (out / "comparison.md").read_text()


def _unfair(tmp_path: Path, change: str) -> Path:
    """Euler depth 20 (3 seeds) against a midpoint set that differs in one way."""
    root = tmp_path / "runs"
    for seed, (t, v) in enumerate(ACC[("euler", 20)]):
        write_run(root, "euler", 20, seed, t, v)
    if change == "depth":
        for seed, (t, v) in enumerate(ACC[("midpoint", 32)]):
            write_run(root, "midpoint", 32, seed, t, v)
    elif change == "params":  # same depth, but (say) projection shortcuts: 0.5% more parameters
        for seed, (t, v) in enumerate(ACC[("midpoint", 20)]):
            write_run(root, "midpoint", 20, seed, t, v, extra=("shortcut=B",), params=271_070)
    else:
        for seed, (t, v) in enumerate(ACC[("midpoint", 20)]):
            write_run(root, "midpoint", 20, seed, t, v, extra=(change,))
    return root


UNFAIR = {
    "depth": ["units per stage", "[3, 3, 3]", "[5, 5, 5]"],
    "optim.lr=0.05": ["optim", "0.05", "0.1"],
    "trainer.max_epochs=100": ["trainer.max_epochs", "100", "182"],
    "data=cifar100": ["data", "cifar100"],
}


def test_different_parameters_are_flagged_per_variant_not_refused(tmp_path):
    root = _unfair(tmp_path, "params")  # projection shortcuts: 1,348 more parameters (+0.50%)
    rows, problems, out = compare([str(root)])
    assert not problems
    flags = {r["variant"]: r["flags"] for r in rows}
    assert flags["euler-20"] == ""  # the reference
    assert "parameters 271,070 vs 269,722 (+0.50%)" in flags["midpoint-20 shortcut=B"]
    assert "midpoint-20 shortcut=B: " in (out / "comparison.md").read_text()


@pytest.mark.parametrize("change", list(UNFAIR))
def test_unfair_comparison_refused(tmp_path, change):
    root = _unfair(tmp_path, change)
    with pytest.raises(ConfigError) as info:
        compare([str(root)])
    msg = str(info.value)
    for word in UNFAIR[change]:
        assert word in msg, f"{word!r} missing from: {msg}"
    assert not (root / "comparison").exists(), "nothing is written for a refused comparison"
    rows, problems, out = compare([str(root)], allow_unfair=True)
    assert problems and len(rows) == 2
    md = (out / "comparison.md").read_text()
    assert "NOT FAIR" in md
    assert (out / "comparison.csv").is_file() and (out / "comparison.png").is_file()


def test_compare_bad_paths(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        compare([str(tmp_path / "nothing")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="summary.json"):
        compare([str(tmp_path / "empty")])
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "summary.json").write_text("{not json")
    with pytest.raises(ConfigError, match="summary.json"):
        compare([str(broken)])


def test_compare_cli(tmp_path, capsys):
    unfair = _unfair(tmp_path / "u", "optim.lr=0.05")
    fair = fair_set(tmp_path / "f")
    assert main([str(fair), f"out={tmp_path / 'out'}"]) == 0
    assert "passed" in capsys.readouterr().out and (tmp_path / "out" / "comparison.md").is_file()
    assert main(["bogus=1", str(fair)]) == 2
    assert "bogus" in capsys.readouterr().err
    assert main([str(fair), "allow_unfair=maybe"]) == 2
    assert "allow_unfair" in capsys.readouterr().err
    res = subprocess.run([sys.executable, "-m", "horesnet.compare", str(unfair)], capture_output=True, text=True,
                         timeout=120, stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert "error" in res.stderr and "unfair" in res.stderr and "optim" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (unfair / "comparison").exists()
    res = subprocess.run([sys.executable, "-m", "horesnet.compare", str(unfair), "allow_unfair=true"],
                         capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "NOT FAIR" in res.stdout and (unfair / "comparison" / "comparison.md").is_file()


@pytest.mark.parametrize(("keys", "value"), [
    (("test", "test/acc1"), "0.9"), (("test", "test/acc1"), None), (("test", "test/acc1"), [0.9]),
    (("test", "test/acc1"), float("inf")), (("test", "test/acc1"), 1e9), (("test", "test/acc1"), -0.1),
    (("val", "val/acc1"), "high"), (("wall_time_s",), "slow"), (("wall_time_s",), -1.0),
    (("images_per_sec",), float("nan")), (("model", "macs"), "many"), (("model", "params"), "853018"),
    (("model", "units_per_stage"), ["9", 9, 9]), (("config", "seed"), "0"), (("model", "params"), 0),
])
def test_a_summary_with_a_bad_number_is_refused_by_field(tmp_path, keys, value, capsys):
    """Every field compare reads is validated where it is read: a string, null, list, non-finite or out-of-range
    value is refused by name (exit 2), never a traceback or a silently wrong table."""
    for seed in range(3):
        write_run(tmp_path / "runs", "euler", 20, seed, 0.9, 0.9)
    path = tmp_path / "runs" / "euler-d20-s1" / "summary.json"
    summary = json.loads(path.read_text())
    tree = summary
    for k in keys[:-1]:
        tree = tree[k]
    tree[keys[-1]] = value
    path.write_text(json.dumps(summary))  # json.dumps writes inf/nan as Infinity/NaN, which json.loads reads back
    assert main([str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and str(path) in err and keys[-1] in err


def test_a_fifo_named_summary_json_is_skipped_or_refused_never_read(tmp_path, capsys):
    import os

    for seed in range(3):
        write_run(tmp_path / "runs", "euler", 20, seed, 0.9, 0.9)
    fifo = tmp_path / "runs" / "stray" / "summary.json"
    fifo.parent.mkdir()
    os.mkfifo(fifo)
    assert main([str(tmp_path / "runs"), f"out={tmp_path / 'o'}"]) == 0  # under a folder: not a run, skipped
    assert main([str(fifo)]) == 2  # named directly: refused by name
    assert "neither a folder nor a regular file" in capsys.readouterr().err
