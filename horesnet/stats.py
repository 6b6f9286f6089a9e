"""The one statistic for a difference between two variants over seeds (docs/design.md, "Statistics").

``welch(a, b)`` takes the per-seed values of two variants and returns the difference of the means (a − b), its 95%
confidence interval from Welch's t with the Welch–Satterthwaite degrees of freedom, Welch's two-sided p-value, the
number of seeds per arm and a verdict: ``significant`` (p < 0.05), ``not significant``, or ``not tested`` when
either arm has fewer than 3 seeds. ``format_difference`` writes it for tables and text:
``+8.26 [+5.10, +11.42], p=0.003 (n=3/3)``. Every comparison of variants in horesnet (``horesnet.compare``,
``experiments/report.py``) goes through these two functions.
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
