"""One rule for units (docs/analysis.md, "Units"): analysis tables hold accuracies and error rates as fractions in
[0, 1], figures show them in percent.

The expected fractions are counted here from the network's own logits (``1 - correct / n``), not from the analysis
code; the figures are caught at ``style.save`` and their plotted data read back from the matplotlib artists.
Networks are tiny (width 0.25, 8x8 images), so the file runs in seconds on a CPU.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import torch

from horesnet.analysis import lesion_random, lesion_single, refinement, reorder, robustness, style, write_table
from horesnet.analysis import plots as P
from horesnet.nn import SwitchOff, hooked

from ._analysis_helpers import batches, owner_of, randomise_norms, tiny

ROOT = Path(__file__).resolve().parents[1]


def errors_by_hand(forward, data) -> float:
    correct = n = 0
    with torch.no_grad():
        for x, y in data:
            correct += int((forward(x).argmax(1) == y).sum())
            n += len(y)
    return 1 - correct / n


def test_lesion_tables_hold_fractions_counted_by_hand(tmp_path):
    model = tiny("euler", 14).eval()
    randomise_norms(model)
    data = batches(n=8, per_batch=4)
    intact = errors_by_hand(model, data)
    records = lesion_single(model, data)
    csv_path, json_path = write_table(records, tmp_path, "lesion")
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    saved = json.loads(json_path.read_text())
    assert len(rows) == len(saved) == len(records) == 6
    for row, js in zip(rows, saved, strict=True):
        block, inc = owner_of(model, row["address"])
        with hooked({block: SwitchOff({inc})}):
            err = errors_by_hand(model, data)
        for table in (js, {k: float(row[k]) for k in ("error", "delta_error", "intact_error")}):
            assert 0 <= table["error"] <= 1 and 0 <= table["intact_error"] <= 1
            assert table["error"] == pytest.approx(err, abs=1e-12)
            assert table["intact_error"] == pytest.approx(intact, abs=1e-12)
            assert table["delta_error"] == pytest.approx(err - intact, abs=1e-12)
        # clean digits: 8 images, so k/8 exactly, never 0.8750000000000001 or 87.5
        for key in ("error", "delta_error", "intact_error"):
            assert re.fullmatch(r"-?(0|1)(\.\d{1,4})?", row[key]), (key, row[key])


def test_every_rate_of_every_study_is_a_fraction():
    model = tiny("euler", 20).eval()
    randomise_norms(model)
    data = batches(n=8, per_batch=4)
    clean = 1 - errors_by_hand(model, data)
    tables = {"lesion_random": lesion_random(model, data, ks=(1, 2), trials=2),
              "reorder": reorder(model, data, swaps=(1,), trials=2),
              "refinement": refinement(model, data),
              "robustness": robustness(model, data, sigmas=(0.0, 0.5))}
    for name, records in tables.items():
        for r in records:
            for key in ("accuracy", "error", "intact_error"):
                if key in r:
                    assert 0 <= r[key] <= 1 and (8 * r[key]) == pytest.approx(round(8 * r[key])), (name, key, r)
    assert tables["robustness"][0]["accuracy"] == pytest.approx(clean, abs=1e-12)
    assert tables["refinement"][-1]["accuracy"] == pytest.approx(clean, abs=1e-12)
    assert tables["lesion_random"][0]["intact_error"] == pytest.approx(1 - clean, abs=1e-12)


@pytest.fixture
def figures(monkeypatch):
    saved = []
    monkeypatch.setattr(style, "save", lambda fig, path: saved.append(fig) or path)
    return saved


def test_figures_plot_percent(figures, tmp_path):
    lesion = [{"address": f"s1.b{i}.u1", "entry": i == 1, "granularity": "unit", "error": e, "intact_error": 0.19}
              for i, e in ((1, 0.8485), (2, 0.2025), (3, 0.19))]
    P.plot_lesion(lesion, tmp_path / "a.png")
    P.plot_lesion_random([{"k": k, "trial": t, "error": e, "intact_error": 0.19}
                          for k, t, e in ((1, 0, 0.2), (1, 1, 0.3), (2, 0, 0.5), (2, 1, 0.5))], tmp_path / "b.png")
    P.plot_reorder([{"kendall_tau": tau, "error": e} for tau, e in ((1.0, 0.19), (0.5, 0.25))], tmp_path / "c.png")
    P.plot_robustness([{"sigma": s, "accuracy": a, "ece": 0.1} for s, a in ((0.0, 0.81), (0.1, 0.405))],
                      tmp_path / "d.png")
    lesion_ax, random_ax, reorder_ax, rob_fig = figures[0].axes[0], figures[1].axes[0], figures[2].axes[0], figures[3]
    assert [p.get_height() for p in lesion_ax.patches] == pytest.approx([84.85, 20.25, 19.0])
    assert list(lesion_ax.get_lines()[0].get_ydata()) == pytest.approx([19.0, 19.0])  # the intact network
    assert lesion_ax.get_ylabel() == "test error (%)" and lesion_ax.get_ylim()[1] > 84.85
    curve, intact = random_ax.get_lines()[0], random_ax.get_lines()[-1]
    assert list(curve.get_ydata()) == pytest.approx([25.0, 50.0]) and list(intact.get_ydata()) == pytest.approx(
        [19.0, 19.0])
    assert reorder_ax.collections[0].get_offsets()[:, 1].tolist() == pytest.approx([19.0, 25.0])
    acc_ax = rob_fig.axes[0]
    assert list(acc_ax.get_lines()[0].get_ydata()) == pytest.approx([81.0, 40.5])
    assert acc_ax.get_ylabel() == "accuracy (%)" and acc_ax.get_ylim() == pytest.approx((0.0, 100.0), abs=5)


def test_the_rule_is_stated_where_the_docs_say():
    analysis = (ROOT / "docs" / "analysis.md").read_text()
    section = analysis.split("\n## Units\n", 1)[1].split("\n## ", 1)[0]
    rule = ("Every file horesnet writes (`summary.json`, `metrics.csv`, W&B, analysis CSV/JSON/W&B tables) stores "
            "accuracies and error rates as fractions in [0, 1]; everything made for reading (console lines, Markdown "
            "tables, figures' axes and annotations) shows percent.")
    assert rule in " ".join(section.split())
    for column in ("`error`", "`delta_error`", "`intact_error`", "`accuracy`", "records_version"):
        assert column in section, column
    assert "analysis.md#units" in (ROOT / "docs" / "training.md").read_text()
