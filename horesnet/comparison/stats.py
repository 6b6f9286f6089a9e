"""The one statistic for a difference between two variants over seeds (docs/design.md, "Statistics"): ``welch`` and
``format_difference`` (``+8.26 [+5.10, +11.42], p=0.003 (n=3/3)``), through which every comparison of variants in
horesnet goes (``horesnet.compare``, ``experiments/report.py``); ``holm`` adjusts the p-values of several pairs tested
at once (Holm 1979), reported beside the raw ones. ``mean_std`` and ``format_mean_std`` summarise one arm: the
spread of a single seed is undefined (NaN, written "1 seed"), not 0.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass

from scipy.stats import t as student_t

ALPHA = 0.05        # "significant" means p < ALPHA
LEVEL = 0.95        # confidence level of the interval
MIN_SEEDS = 3       # fewer seeds in either arm: "not tested"
SIGNIFICANT, NOT_SIGNIFICANT, NOT_TESTED = "significant", "not significant", "not tested"


@dataclass(frozen=True)
class Difference:
    """mean(a) − mean(b) with its Welch confidence interval and test; NaN where not tested."""

    difference: float
    ci_low: float
    ci_high: float
    p: float
    t: float
    df: float
    n_a: int
    n_b: int
    verdict: str

    def as_dict(self) -> dict:
        return asdict(self)


def _clean(values) -> list[float]:
    return [float(v) for v in values if v is not None and not math.isnan(float(v))]


def welch(a, b, level: float = LEVEL) -> Difference:
    """Welch's comparison of the per-seed values ``a`` and ``b`` (None/NaN values are left out and not counted).

    With s² the sample variances and n the seeds per arm: se = √(s_a²/n_a + s_b²/n_b), t = (ā − b̄)/se,
    df = se⁴ / ((s_a²/n_a)²/(n_a − 1) + (s_b²/n_b)²/(n_b − 1)), p = 2·P(T_df > |t|), CI = (ā − b̄) ± t_df,(1+level)/2·se.

    Fewer than ``MIN_SEEDS`` values in either arm: the difference is given, everything else is NaN and the verdict is
    "not tested". Zero variance in both arms (every seed gave the same value): se = 0, the interval is the point
    [d, d] and the test takes its limit -- p = 1 ("not significant") when the means are equal, p = 0
    ("significant") when they differ; df is NaN (the Welch–Satterthwaite formula is 0/0 there).
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}.")
    a, b = _clean(a), _clean(b)
    n_a, n_b = len(a), len(b)
    nan = float("nan")
    diff = statistics.fmean(a) - statistics.fmean(b) if a and b else nan
    if n_a < MIN_SEEDS or n_b < MIN_SEEDS:
        return Difference(diff, nan, nan, nan, nan, nan, n_a, n_b, NOT_TESTED)
    va, vb = statistics.variance(a) / n_a, statistics.variance(b) / n_b
    se = math.sqrt(va + vb)
    if se == 0.0:
        p = 1.0 if diff == 0.0 else 0.0
        t = 0.0 if diff == 0.0 else math.copysign(math.inf, diff)
        return Difference(diff, diff, diff, p, t, nan, n_a, n_b, SIGNIFICANT if p < ALPHA else NOT_SIGNIFICANT)
    df = (va + vb) ** 2 / (va ** 2 / (n_a - 1) + vb ** 2 / (n_b - 1))
    t = diff / se
    p = float(min(1.0, 2.0 * student_t.sf(abs(t), df)))
    half = float(student_t.ppf((1.0 + level) / 2.0, df)) * se
    return Difference(diff, diff - half, diff + half, p, t, df, n_a, n_b,
                      SIGNIFICANT if p < ALPHA else NOT_SIGNIFICANT)


def mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation of the finite values (None/NaN left out); the standard deviation of one
    value is undefined: NaN, never 0."""
    values = _clean(values)
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else math.nan)


def format_mean_std(mean: float, std: float, digits: int = 2) -> str:
    """``91.23 ± 0.45``; ``91.23 (1 seed)`` where the spread is undefined; ``n/a`` without a mean."""
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.{digits}f} (1 seed)" if math.isnan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def holm(ps) -> list[float]:
    """Holm–Bonferroni adjusted p-values (S. Holm, Scand. J. Statist. 6, 1979), in the order given: with the m
    tested p-values sorted ascending, p_(i) becomes max_{j<=i} min(1, (m − j + 1) p_(j)). NaN (not tested) stays
    NaN and does not count in m. "Significant" after adjustment means adjusted p < ALPHA, which controls the
    family-wise error rate at ALPHA."""
    tested = sorted((p, i) for i, p in enumerate(ps) if not math.isnan(p))
    m, out, running = len(tested), [math.nan] * len(ps), 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def format_p(p: float) -> str:
    """``p=0.034``; ``p<0.001`` below a thousandth; ``p=n/a`` for NaN."""
    if math.isnan(p):
        return "p=n/a"
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def format_difference(d: Difference, digits: int = 2, verdict: bool = False) -> str:
    """``+8.26 [+5.10, +11.42], p=0.003 (n=3/3)``; not tested: ``+1.20, not tested (n=2/3)``.

    ``verdict=True`` appends the verdict (``..., significant``) to a tested difference.
    """
    n = f"(n={d.n_a}/{d.n_b})"
    if d.verdict == NOT_TESTED:
        return f"{d.difference:+.{digits}f}, {NOT_TESTED} {n}"
    text = f"{d.difference:+.{digits}f} [{d.ci_low:+.{digits}f}, {d.ci_high:+.{digits}f}], {format_p(d.p)} {n}"
    return f"{text}, {d.verdict}" if verdict else text
