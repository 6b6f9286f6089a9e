"""compare on language models: the table, the differences and the figure are about bits per character (lower is
better), not next-character accuracy, when every run reports ``test/bpc``. Expected values from ``statistics``."""

from __future__ import annotations

import json
import statistics

from horesnet.comparison.table import compare

from ._compare_helpers import write_run

BPC = {"euler": [1.90, 1.93, 1.95], "midpoint": [1.80, 1.84, 1.85]}


def _lm_runs(root, with_bpc=True):
    for block, values in BPC.items():
        for seed, bpc in enumerate(values):
            run = write_run(root, block, 20, seed, 0.5, 0.5)
            summary = json.loads((run / "summary.json").read_text())
            if with_bpc:
                summary["test"]["test/bpc"], summary["val"]["val/bpc"] = bpc, bpc + 0.01
            (run / "summary.json").write_text(json.dumps(summary))


def test_language_models_are_compared_by_bits_per_character(tmp_path):
    _lm_runs(tmp_path / "runs")
    rows, problems, out = compare([str(tmp_path / "runs")])
    by = {r["block"]: r for r in rows}
    for block, values in BPC.items():
        assert by[block]["test_bpc_mean"] == statistics.fmean(values)
        assert by[block]["test_bpc_std"] == statistics.stdev(values)
        assert "test_acc_mean" not in by[block]
    md = (out / "comparison.md").read_text()
    assert "| test bpc | val bpc |" in md and "lower is better" in md and "test acc %" not in md
    pair = json.loads((out / "comparison.json").read_text())["differences"][0]
    assert pair["difference"] == statistics.fmean(BPC["midpoint"]) - statistics.fmean(BPC["euler"])


def test_without_bpc_the_comparison_stays_on_accuracy(tmp_path):
    _lm_runs(tmp_path / "runs", with_bpc=False)
    rows, _, out = compare([str(tmp_path / "runs")])
    assert all(r["test_acc_mean"] == 50.0 for r in rows)
    assert "test acc %" in (out / "comparison.md").read_text()
