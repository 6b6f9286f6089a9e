"""One PNG per table of the built-in studies (matplotlib, Agg backend); each study names its plots when it
registers (``horesnet.analysis.studies``, docs/extending_studies.md)."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def plot_lesion(records, path: Path, title: str = "") -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6, 0.18 * len(records)), 4))
    colors = ["tab:red" if r["entry"] else "tab:blue" for r in records]
    ax.bar(range(len(records)), [r["error"] for r in records], color=colors)
    ax.axhline(records[0]["intact_error"], color="k", ls="--", lw=1, label="intact")
    ax.set_xticks(range(len(records)), [r["address"] for r in records], rotation=90, fontsize=6)
    ax.set_ylabel("test error (%)")
    ax.set_title(f"{title} single deletions (red: entry/downsampling)")
    ax.legend()
    return _save(fig, path)


def _mean_std_by(records, key, value):
    groups = defaultdict(list)
    for r in records:
        groups[r[key]].append(r[value])
    xs = sorted(groups)
    return xs, [statistics.fmean(groups[x]) for x in xs], [statistics.pstdev(groups[x]) for x in xs]


def _one_axes(path: Path, title: str, xlabel: str, ylabel: str, draw) -> Path:
    """One 6x4 plot: ``draw(ax)`` and the labels."""
    fig, ax = _plt().subplots(figsize=(6, 4))
    draw(ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return _save(fig, path)


def plot_lesion_random(records, path: Path, title: str = "") -> Path:
    xs, m, s = _mean_std_by(records, "k", "error")
    return _one_axes(path, f"{title} random deletions", "units deleted", "test error (%)",
                     lambda ax: ax.errorbar(xs, m, yerr=s, marker="o", capsize=3))


def plot_reorder(records, path: Path, title: str = "") -> Path:
    def draw(ax):
        ax.scatter([r["kendall_tau"] for r in records], [r["error"] for r in records])
        ax.invert_xaxis()
    return _one_axes(path, f"{title} reordered blocks", "Kendall tau to the original order", "test error (%)", draw)


def plot_paths(records, path: Path, title: str = "") -> Path:
    return _one_axes(path, f"{title} path lengths", "path length (units)", "number of paths",
                     lambda ax: ax.bar([r["length"] for r in records], [r["count"] for r in records]))


def plot_effective(records, path: Path, title: str = "") -> Path:
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    ks = [r["length"] for r in records]
    a1.semilogy(ks, [max(r["mean_grad_norm"], 1e-30) for r in records], marker="o")
    a1.set_xlabel("path length")
    a1.set_ylabel("input-gradient norm of one path")
    a2.bar(ks, [r["total_grad"] for r in records])
    a2.set_xlabel("path length")
    a2.set_ylabel("total gradient (norm x path count)")
    fig.suptitle(f"{title} effective paths")
    return _save(fig, path)


def plot_responses(records, path: Path, title: str = "") -> Path:
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    a1.plot([r["layer"] for r in records], [r["std"] for r in records])
    a1.set_xlabel("layer index")
    a1.set_ylabel("std of response")
    a2.plot(range(1, len(records) + 1), sorted((r["std"] for r in records), reverse=True))
    a2.set_xlabel("layer index (sorted by magnitude)")
    fig.suptitle(f"{title} layer responses")
    return _save(fig, path)


def plot_refinement(records, path: Path, title: str = "") -> Path:
    return _one_axes(path, f"{title} iterative refinement", "block", "loss of the head on the block output",
                     lambda ax: ax.plot([r["block"] for r in records], [r["loss"] for r in records], marker="o"))


def plot_robustness(records, path: Path, title: str = "") -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([r["sigma"] for r in records], [r["accuracy"] for r in records], marker="o", label="accuracy (%)")
    ax2 = ax.twinx()
    ax2.plot([r["sigma"] for r in records], [r["ece"] for r in records], marker="s", color="tab:orange", label="ECE")
    ax.set_xlabel("Gaussian noise sigma (pixels in [0, 1])")
    ax.set_ylabel("accuracy (%)")
    ax2.set_ylabel("ECE")
    ax.set_title(f"{title} robustness")
    return _save(fig, path)

