"""The figure of ``python -m horesnet.compare``: per-seed test accuracy with means, 95% CIs (t over seeds) and each
variant's difference from the reference, beside validation accuracy per epoch (one line per run)."""

from __future__ import annotations

import csv
import math
import statistics
from pathlib import Path

from ..runs import metrics_path
from .metrics import metric_of_rows
from .stats import LEVEL, format_p


def plot(rows: list[dict], groups: dict, path: Path, reference_diffs: list[dict]) -> None:
    """The figure of the module docstring; ``reference_diffs``: each variant's difference from the reference (CI, p),
    annotated under its points. The titles say the dataset and the split."""
    from ..analysis import style as S

    fig, (ax1, ax2) = S.figure(2, width=12, height=4.8)
    m = metric_of_rows(rows)
    diffs = {d["a"]: d for d in reference_diffs}
    for i, r in enumerate(rows):
        seeds = r[f"test_{m.name}_seeds"]
        jitter = [(k - (len(seeds) - 1) / 2) * 0.06 for k in range(len(seeds))]
        ax1.scatter([i + j for j in jitter], seeds, s=18, color=f"C{i % 10}", alpha=0.8, zorder=3,
                    label="one seed" if i == 0 else None)
        half = _ci_half(seeds)
        ax1.errorbar([i + 0.3], [r[f"test_{m.name}_mean"]], yerr=[[half], [half]] if half == half else None,
                     fmt="D", color="k", ms=5, capsize=4, zorder=4, label="mean, 95% CI" if i == 0 else None)
        d = diffs.get(r["variant"])
        note = "reference (Δ = variant − this)" if r.get("reference") else (
            f"Δ {d['difference']:+.2f}" + (f" [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}]\n{format_p(d['p'])}"
                                          if d["verdict"] != "not tested" else "\nnot tested") if d else "")
        ax1.annotate(note, (i, 0), xycoords=("data", "axes fraction"), xytext=(0, 4), textcoords="offset points",
                     ha="center", va="bottom", fontsize=7)
    ax1.set_xticks(range(len(rows)), [r["variant"] for r in rows], rotation=30, ha="right")
    ax1.set_xlim(-0.6, len(rows) - 0.4)
    low, high = ax1.get_ylim()
    ax1.set_ylim(low - 0.18 * (high - low), high)  # room for the notes under the points
    S.label(ax1, "variant", f"final test {m.title}",
            f"test {m.title.removesuffix(' (%)')} per seed, {_data_note(groups)}")
    ax1.legend(fontsize=8, loc="upper left")
    for i, row in enumerate(rows):
        for run_dir in row["runs"]:  # one colour per variant, one line per run
            curve = _val_curve(metrics_path(run_dir))
            if curve:
                label = row["variant"] if run_dir == row["runs"][0] else None
                ax2.plot(*zip(*curve, strict=True), alpha=0.7, marker=".", color=f"C{i % 10}", label=label)
    S.label(ax2, "epoch", "validation accuracy (%)", "validation accuracy per epoch, one line per run")
    S.integer_ticks(ax2)
    if ax2.get_legend_handles_labels()[0]:
        ax2.legend(fontsize=8)
    S.save(fig, path)


def _ci_half(values: list[float]) -> float:
    """Half-width of the 95% t interval of the mean of ``values`` (NaN below two values)."""
    from scipy.stats import t as student_t

    values = [v for v in values if v == v]
    if len(values) < 2:
        return math.nan
    return float(student_t.ppf((1 + LEVEL) / 2, len(values) - 1)) * statistics.stdev(values) / math.sqrt(len(values))


def _data_note(groups: dict) -> str:
    """``fashion_mnist test split (first 2,000 images)`` from the runs' recorded data config."""
    data = next(iter(groups.values()))[0]["config"].get("data") or {}
    limit = data.get("limit_test")
    return f"{data.get('name', '?')} test split" + (f" (first {limit:,} images)" if isinstance(limit, int) else "")


def _val_curve(path: Path) -> list[tuple[int, float]]:
    if not path.is_file():
        return []
    with open(path) as f:
        return [(int(r["epoch"]) + 1, 100 * float(r["val/acc1"])) for r in csv.DictReader(f) if r.get("val/acc1")]
