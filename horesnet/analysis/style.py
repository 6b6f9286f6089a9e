"""One plotting style for every study and for ``compare``: matplotlib's Agg backend, readable font sizes, a light
grid, every axis named, integer ticks where counts or indices are plotted, bars from zero, and a legend wherever
two series share a plot."""

from __future__ import annotations

from pathlib import Path

RC = {"font.size": 10, "axes.titlesize": 11, "axes.labelsize": 10, "xtick.labelsize": 9, "ytick.labelsize": 9,
      "legend.fontsize": 9, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False,
      "axes.spines.right": False, "savefig.dpi": 120}
ENTRY, OTHER, SECOND = "tab:red", "tab:blue", "tab:orange"


def pyplot():
    """matplotlib.pyplot on the Agg backend with horesnet's style applied."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(RC)
    return plt


def figure(ncols: int = 1, width: float = 6.0, height: float = 4.0):
    """``(fig, axes)``: one row of ``ncols`` axes (a single axes when ``ncols`` is 1)."""
    return pyplot().subplots(1, ncols, figsize=(width, height))


def integer_ticks(ax, axis: str = "x") -> None:
    """Only whole numbers on ``axis`` (counts, layer or block indices)."""
    from matplotlib.ticker import MaxNLocator

    (ax.xaxis if axis == "x" else ax.yaxis).set_major_locator(MaxNLocator(integer=True))


def from_zero(ax, top: float | None = None) -> None:
    """Bars start at zero: the y axis includes 0 so that bar heights compare honestly."""
    low, high = ax.get_ylim()
    ax.set_ylim(min(0.0, low), max(high, top) if top is not None else high)


def label(ax, xlabel: str, ylabel: str, title: str = "") -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)


def save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    pyplot().close(fig)
    return path
