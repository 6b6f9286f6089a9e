"""Fast tests of the researcher's workflow after fit (the command-line walk itself: tests/test_readme_walkthrough.py):
paths and study lists without Hydra quoting, studies skipped or sized by the network, compare's distinct seeds, the
console filter, and the plots' named axes and legends.

Expected values are worked out by hand (units and block pairs from the equal-depth rule, means of per-seed values).
"""

from __future__ import annotations

import logging

import pytest

from horesnet import build_model
from horesnet.analysis import plots as P
from horesnet.analysis import style
from horesnet.analysis.studies import deletable_units, sized, swappable_pairs
from horesnet.cli.argv import normalise
from horesnet.cli.compose import compose
from horesnet.comparison.table import compare
from horesnet.training.console import ConsoleFilter, third_party

from ._compare_helpers import write_run

MEMBER = "multirun/x/block=midpoint,data=synthetic,depth=20,seed=0"


def test_a_sweep_member_path_needs_no_quoting(tmp_path):
    member = tmp_path / MEMBER
    member.mkdir(parents=True)
    for argv in ([f"ckpt={member}"], [str(member)]):  # ckpt=PATH, or the bare path as the shell expands it
        cfg = compose("analyze", normalise("analyze", [*argv, "study=[lesion,lesion_random]", "wandb=disabled"]))
        assert cfg.ckpt == str(member)
        assert cfg.study == "lesion,lesion_random"
    assert compose("analyze", normalise("analyze", ["study=paths,refinement"])).study == "paths,refinement"
    assert compose("analyze", normalise("analyze", ["study='paths,refinement'"])).study == "paths,refinement"
    assert compose("fit", normalise("fit", [f"resume={member}", "data=synthetic"])).resume == str(member)


@pytest.mark.parametrize("block, depth, units, pairs", [
    ("euler", 8, 0, 0),      # 1 unit per stage: only the entry blocks
    ("euler", 14, 3, 0),     # 2 units per stage: one non-entry block each, nothing to swap with
    ("euler", 20, 6, 3),     # 2 non-entry blocks per stage: one pair each
    ("midpoint", 20, 6, 0),  # euler* + one midpoint block per stage
    ("euler", 32, 12, 18),   # 4 non-entry blocks per stage: C(4, 2) = 6 pairs each
])
def test_studies_are_sized_by_the_network(block, depth, units, pairs):
    model = build_model(block=block, depth=depth, width=0.25)
    assert deletable_units(model) == units
    assert swappable_pairs(model) == pairs


def test_sized_defaults_and_skip_reasons():
    from horesnet.analysis import get_study

    assert sized(0) == [] and sized(1) == [1] and sized(6) == [1, 2, 4, 6] and sized(16) == [1, 2, 4, 8, 16]
    model = build_model(block="midpoint", depth=20, width=0.25)
    reorder, lesion_random = get_study("reorder"), get_study("lesion_random")
    assert "no two non-entry blocks share a stage" in reorder.skip_reason(model, {"swaps": None, "trials": 5})
    assert lesion_random.skip_reason(model, {"ks": None, "trials": 5}) is None
    assert "ks=[8]" in lesion_random.skip_reason(model, {"ks": [1, 8], "trials": 5})
    assert lesion_random.passes(model, {"ks": None, "trials": 5}) == 1 + 4 * 5  # intact, then ks 1, 2, 4, 6
    tiny = build_model(block="euler", depth=8, width=0.25)
    assert "no non-entry unit" in lesion_random.skip_reason(tiny, {"ks": None, "trials": 5})


def test_compare_counts_distinct_seeds(tmp_path):
    for seed, acc in ((0, 0.90), (0, 0.92), (1, 0.80)):  # two runs of seed 0: one observation, their mean
        write_run(tmp_path / f"r{len(list(tmp_path.iterdir()))}", "euler", 20, seed, acc, acc)
    rows, _, _ = compare([str(tmp_path)], out=str(tmp_path / "cmp"))
    (row,) = rows
    assert row["seeds"] == 2 and row["n_runs"] == 3
    assert row["test_acc_seeds"] == pytest.approx([91.0, 80.0])
    assert row["test_acc_mean"] == pytest.approx(85.5)
    assert "2 runs share seed 0" in row["flags"]


def test_the_console_keeps_horesnet_and_errors_only():
    keep = ConsoleFilter().filter

    def rec(name, level=logging.INFO, **extra):
        r = logging.LogRecord(name, level, __file__, 1, "x", None, None)
        r.__dict__.update(extra)
        return r
    assert keep(rec("horesnet.fit")) and keep(rec("hydra.core")) and keep(rec("pytorch_lightning", logging.ERROR))
    assert not keep(rec("pytorch_lightning.utilities.rank_zero")) and not keep(rec("horesnet_thirdparty", 30))
    assert not keep(rec("horesnet.fit", file_only=True))
    import torch

    assert third_party(torch.__file__) and third_party(logging.__file__)
    assert not third_party(style.__file__) and not third_party(__file__)  # horesnet and user code stay


def _figures(monkeypatch):
    saved = []
    monkeypatch.setattr(style, "save", lambda fig, path: saved.append(fig) or path)
    return saved


def test_every_plot_names_its_axes(monkeypatch, tmp_path):
    saved = _figures(monkeypatch)
    lesion = [{"address": f"s1.b{i}.u1", "entry": i == 1, "error": 0.10 + i / 100, "intact_error": 0.09,
               "granularity": "unit"} for i in (1, 2, 3)]  # records hold fractions (docs/analysis.md, "Units")
    P.plot_lesion(lesion, tmp_path / "a.png")
    P.plot_lesion_random([{"k": k, "trial": t, "error": 0.1 * k + t / 100, "intact_error": 0.09} for k in (1, 2)
                          for t in (0, 1)], tmp_path / "b.png")
    P.plot_paths([{"length": k, "count": c} for k, c in enumerate([1, 3, 3, 1])], tmp_path / "c.png")
    P.plot_responses([{"layer": i, "std": 1.0 / i} for i in (1, 2, 3)], tmp_path / "d.png")
    P.plot_robustness([{"sigma": s, "accuracy": 0.9 - s, "ece": s} for s in (0.0, 0.1)], tmp_path / "e.png")
    for fig in saved:
        for ax in fig.axes:
            assert ax.get_xlabel() or ax.get_ylabel(), fig
            assert ax.get_ylabel(), (fig, ax.get_xlabel())
    lesion_ax, random_ax, paths_ax, _, rob_ax = (f.axes[0] for f in saved)
    assert lesion_ax.get_ylim()[0] == 0 and lesion_ax.get_legend() is not None
    assert random_ax.get_legend() is not None
    ticks = [t for t in paths_ax.get_xticks() if paths_ax.get_xlim()[0] <= t <= paths_ax.get_xlim()[1]]
    assert all(float(t).is_integer() for t in ticks)
    # robustness: accuracy and ECE on two axes side by side, each from zero (no twin axes, no legend over a curve)
    rob = saved[-1]
    assert [ax.get_ylabel() for ax in rob.axes] == ["accuracy (%)", "expected calibration error (ECE)"]
    assert all(ax.get_ylim()[0] <= 0 and ax.get_legend() is None for ax in rob.axes)
    responses = saved[3]
    assert all(ax.get_ylim()[0] <= 0 for ax in responses.axes)  # no auto-zoom into noise
