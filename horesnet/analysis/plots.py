"""One PNG per table of the built-in studies, in the one style of ``horesnet.analysis.style``; each study names its
plots when it registers (``horesnet.analysis.studies``, docs/extending_studies.md).

The records hold accuracies and errors as fractions in [0, 1] (docs/analysis.md, "Units"); a figure is made for
reading, so its axes show them in percent, converted here by ``percent``."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

from . import style as S
from .common import percent


def plot_lesion(records, path: Path, title: str = "") -> Path:
    from matplotlib.patches import Patch

    fig, ax = S.figure(width=max(6, 0.28 * len(records)), height=4.5)
    ax.bar(range(len(records)), [percent(r["error"]) for r in records],
           color=[S.ENTRY if r["entry"] else S.OTHER for r in records])
    ax.axhline(percent(records[0]["intact_error"]), color="k", ls="--", lw=1)
    ax.set_xticks(range(len(records)), [r["address"] for r in records], rotation=90,
                  fontsize=8 if len(records) <= 60 else 6)
    what = "block" if records and records[0].get("granularity") == "block" else "unit"
    S.label(ax, f"deleted {what} (address: stage.block.unit)", "test error (%)")
    fig.suptitle(f"{title} single deletions")
    S.from_zero(ax)
    ax.legend(handles=[Patch(color=S.OTHER), Patch(color=S.ENTRY), ax.get_lines()[0]],
              labels=[f"{what} deleted", "entry/downsampling deleted", "intact network"],
              loc="lower left", bbox_to_anchor=(0, 1.0), ncol=3, frameon=False)
    return S.save(fig, path)


def _one_axes(path: Path, title: str, xlabel: str, ylabel: str, draw, integer_x: bool = False) -> Path:
    """One 6x4 plot: ``draw(ax)`` and the labels."""
    fig, ax = S.figure()
    draw(ax)
    S.label(ax, xlabel, ylabel, title)
    if integer_x:
        S.integer_ticks(ax)
    return S.save(fig, path)


def plot_lesion_random(records, path: Path, title: str = "") -> Path:
    by_k = defaultdict(list)
    for r in records:
        by_k[r["k"]].append(r["error"])
    ks = sorted(by_k)

    def draw(ax):
        ax.errorbar(ks, [percent(statistics.fmean(by_k[k])) for k in ks],
                    yerr=[percent(statistics.pstdev(by_k[k])) for k in ks], marker="o", capsize=3,
                    label="mean ± std over trials")
        ax.axhline(percent(records[0]["intact_error"]), color="k", ls="--", lw=1, label="intact network")
        ax.legend()
    return _one_axes(path, f"{title} random deletions", "units deleted (k)", "test error (%)", draw,
                     integer_x=True)


def plot_reorder(records, path: Path, title: str = "") -> Path:
    def draw(ax):
        ax.scatter([r["kendall_tau"] for r in records], [percent(r["error"]) for r in records])
        ax.invert_xaxis()
    return _one_axes(path, f"{title} reordered blocks", "Kendall tau to the original order", "test error (%)", draw)


def plot_paths(records, path: Path, title: str = "") -> Path:
    return _one_axes(path, f"{title} path lengths", "path length (units)", "number of paths",
                     # as floats: a deep network has more paths than a C long holds (momentum-110: ~1e23)
                     lambda ax: ax.bar([r["length"] for r in records], [float(r["count"]) for r in records]),
                     integer_x=True)


def plot_effective(records, path: Path, title: str = "") -> Path:
    fig, (a1, a2) = S.figure(2, width=11)
    ks = [r["length"] for r in records]
    a1.semilogy(ks, [max(r["mean_grad_norm"], 1e-30) for r in records], marker="o")
    S.label(a1, "path length (units)", "input-gradient norm of one path", "per path")
    a2.bar(ks, [r["total_grad"] for r in records])
    S.label(a2, "path length (units)", "total gradient (norm x path count)", "all paths of a length")
    for ax in (a1, a2):
        S.integer_ticks(ax)
    fig.suptitle(f"{title} effective paths")
    return S.save(fig, path)


def plot_responses(records, path: Path, title: str = "") -> Path:
    fig, (a1, a2) = S.figure(2, width=11)
    a1.plot([r["layer"] for r in records], [r["std"] for r in records], marker=".")
    S.label(a1, "3x3 layer (forward order)", "std of response", "in layer order")
    a2.plot(range(1, len(records) + 1), sorted((r["std"] for r in records), reverse=True), marker=".")
    S.label(a2, "rank (largest first)", "std of response", "sorted by magnitude")
    for ax in (a1, a2):
        S.integer_ticks(ax)
        S.from_zero(ax)  # from zero: an auto-zoomed axis (0.97-1.02) makes noise look like structure
    fig.suptitle(f"{title} layer responses")
    return S.save(fig, path)


def plot_refinement(records, path: Path, title: str = "") -> Path:
    return _one_axes(path, f"{title} iterative refinement", "block (forward order)",
                     "loss of the head on the block output",
                     lambda ax: ax.plot([r["block"] for r in records], [r["loss"] for r in records], marker="o"),
                     integer_x=True)


def plot_robustness(records, path: Path, title: str = "") -> Path:
    """Accuracy and calibration error side by side, each on its own axis from zero (no twin axes, no legend over
    the curve)."""
    fig, (a1, a2) = S.figure(2, width=11)
    sigmas = [r["sigma"] for r in records]
    a1.plot(sigmas, [percent(r["accuracy"]) for r in records], marker="o")
    S.label(a1, "Gaussian noise sigma (pixels in [0, 1])", "accuracy (%)", "accuracy")
    S.from_zero(a1, 100.0)
    a2.plot(sigmas, [r["ece"] for r in records], marker="s", color=S.SECOND)
    S.label(a2, "Gaussian noise sigma (pixels in [0, 1])", "expected calibration error (ECE)", "calibration")
    S.from_zero(a2)
    fig.suptitle(f"{title} robustness")
    return S.save(fig, path)
