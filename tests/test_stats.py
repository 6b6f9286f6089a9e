"""Tests of horesnet.comparison.stats.welch / format_difference (docs/design.md, "Statistics").

Two independent references:
- hand cases built so that Welch's df is an integer (2 or 4), where Student's t has a closed-form CDF and quantile
  (ν = 2: F(t) = 1/2 + t / (2√(2 + t²)), q(α) = (2α − 1)/√(2α(1 − α)); ν = 4: F(t) = 1/2 + (3/8)·x·(1 − x²/12),
  x = t/√(1 + t²/4), q(α) = 2√(c − 1) with c = cos(arccos(√α')/3)/√α', α' = 4α(1 − α)), so t, df, p and the
  interval are written from the textbook formulas with no statistics library;
- ``scipy.stats.ttest_ind(equal_var=False)`` and its ``confidence_interval`` on unequal-variance, unequal-n data.
"""

from __future__ import annotations

import math
import random

import pytest
from scipy import stats as scipy_stats

from horesnet.comparison.stats import Difference, format_difference, format_p, welch


def _t_quantile_2(alpha: float) -> float:
    return (2 * alpha - 1) / math.sqrt(2 * alpha * (1 - alpha))


def _t_quantile_4(alpha: float) -> float:
    a = 4 * alpha * (1 - alpha)
    return 2 * math.sqrt(math.cos(math.acos(math.sqrt(a)) / 3) / math.sqrt(a) - 1)


def _p_two_sided_4(t: float) -> float:
    x = abs(t) / math.sqrt(1 + t * t / 4)
    return 2 * (0.5 - 3 / 8 * x * (1 - x * x / 12))


def test_df_2_by_hand():
    # a: mean 2, variance 1; b: mean 5, variance 0 -> se = 1/√3, t = -3√3 (t² = 27), df = (1/3)²/((1/3)²/2) = 2,
    # p = 1 - |t|/√(2 + t²) = 1 - √(27/29), CI = -3 ± q₂(0.975)/√3
    d = welch([1.0, 2.0, 3.0], [5.0, 5.0, 5.0])
    assert d.difference == pytest.approx(-3.0)
    assert d.t == pytest.approx(-3 * math.sqrt(3))
    assert d.df == pytest.approx(2.0)
    assert d.p == pytest.approx(1 - math.sqrt(27 / 29), rel=1e-10)          # 0.0351
    half = _t_quantile_2(0.975) / math.sqrt(3)                              # 4.3027 / √3 = 2.4841
    assert (d.ci_low, d.ci_high) == pytest.approx((-3 - half, -3 + half), rel=1e-10)
    assert (d.n_a, d.n_b) == (3, 3)
    assert d.verdict == "significant"
    # a - b and b - a are mirror images
    m = welch([5.0, 5.0, 5.0], [1.0, 2.0, 3.0])
    assert (m.difference, m.ci_low, m.ci_high, m.p) == pytest.approx((3.0, 3 - half, 3 + half, d.p))


def test_df_4_by_hand():
    # equal variances 1, n = 3/3: se = √(2/3), t = -3/√(2/3) (t² = 13.5), df = (2/3)²/(2·(1/3)²/2) = 4
    d = welch([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    t = -3 / math.sqrt(2 / 3)
    assert d.t == pytest.approx(t) and d.df == pytest.approx(4.0)
    assert d.p == pytest.approx(_p_two_sided_4(t), rel=1e-10)                # 0.0213
    half = _t_quantile_4(0.975) * math.sqrt(2 / 3)                          # 2.7764 · 0.8165 = 2.2669
    assert (d.ci_low, d.ci_high) == pytest.approx((-3 - half, -3 + half), rel=1e-10)
    assert d.verdict == "significant"
    # the same spread with a difference of 1: t² = 1.5, not significant
    w = welch([1.0, 2.0, 3.0], [2.0, 3.0, 4.0])
    assert w.p == pytest.approx(_p_two_sided_4(-1 / math.sqrt(2 / 3)), rel=1e-10)
    assert w.p > 0.05 and w.verdict == "not significant"
    # a 90% interval uses the 0.95 quantile
    n90 = welch([1.0, 2.0, 3.0], [4.0, 5.0, 6.0], level=0.90)
    assert n90.ci_high == pytest.approx(-3 + _t_quantile_4(0.95) * math.sqrt(2 / 3), rel=1e-10)


def test_matches_scipy_on_unequal_samples():
    rng = random.Random(7)
    for n_a, n_b in [(3, 3), (3, 5), (4, 9), (10, 3)]:
        a = [rng.gauss(80.0, 3.0) for _ in range(n_a)]
        b = [rng.gauss(78.0, 0.5) for _ in range(n_b)]
        d = welch(a, b)
        ref = scipy_stats.ttest_ind(a, b, equal_var=False)
        ci = ref.confidence_interval(0.95)
        assert d.t == pytest.approx(float(ref.statistic), rel=1e-10)
        assert d.df == pytest.approx(float(ref.df), rel=1e-10)
        assert d.p == pytest.approx(float(ref.pvalue), rel=1e-9)
        assert (d.ci_low, d.ci_high) == pytest.approx((float(ci.low), float(ci.high)), rel=1e-9)
        assert (d.n_a, d.n_b) == (n_a, n_b)
        assert d.verdict == ("significant" if ref.pvalue < 0.05 else "not significant")


def test_fewer_than_three_seeds_is_not_tested():
    d = welch([1.0, 2.0], [4.0, 5.0, 6.0])
    assert d.verdict == "not tested" and (d.n_a, d.n_b) == (2, 3)
    assert d.difference == pytest.approx(1.5 - 5.0)
    assert all(math.isnan(x) for x in (d.ci_low, d.ci_high, d.p, d.t, d.df))
    assert format_difference(d) == "-3.50, not tested (n=2/3)"
    assert welch([1.0, 2.0, 3.0], [7.0]).verdict == "not tested"
    # missing values (None / NaN, e.g. a run without a test result) are left out and not counted
    m = welch([1.0, None, 2.0, float("nan")], [4.0, 5.0, 6.0])
    assert (m.n_a, m.verdict) == (2, "not tested")
    assert math.isnan(welch([], [1.0, 2.0, 3.0]).difference)


def test_zero_variance_in_both_arms():
    same = welch([80.0, 80.0, 80.0], [80.0, 80.0, 80.0])
    assert (same.difference, same.ci_low, same.ci_high, same.p, same.t) == (0.0, 0.0, 0.0, 1.0, 0.0)
    assert same.verdict == "not significant" and math.isnan(same.df)
    apart = welch([81.0, 81.0, 81.0], [80.0, 80.0, 80.0])
    assert (apart.difference, apart.ci_low, apart.ci_high, apart.p) == (1.0, 1.0, 1.0, 0.0)
    assert apart.t == math.inf and apart.verdict == "significant"
    assert welch([80.0] * 3, [81.0] * 3).t == -math.inf
    # zero variance in one arm only is an ordinary Welch test (df = n - 1 of the other arm)
    assert welch([80.0] * 3, [79.0, 80.0, 81.0]).df == pytest.approx(2.0)


def test_format():
    d = Difference(8.2633, 5.1041, 11.4222, 0.0031, 7.8, 3.9, 3, 3, "significant")
    assert format_difference(d) == "+8.26 [+5.10, +11.42], p=0.003 (n=3/3)"
    assert format_difference(d, digits=1, verdict=True) == "+8.3 [+5.1, +11.4], p=0.003 (n=3/3), significant"
    assert format_p(0.0004) == "p<0.001" and format_p(0.1012) == "p=0.101" and format_p(float("nan")) == "p=n/a"
    assert format_difference(welch([1.0, 2.0, 3.0], [5.0, 5.0, 5.0])) == "-3.00 [-5.48, -0.52], p=0.035 (n=3/3)"
    assert welch([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]).as_dict()["verdict"] == "significant"
    with pytest.raises(ValueError, match="level"):
        welch([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], level=95)
