"""Tests of the linear multistep schemes (horesnet.schemes.Multistep) and the properties every scheme reports.

References, independent of the code under test: nodepy (D. Ketcheson et al.), whose LinearMultistepMethod writes a
method as Σ_i a_i y_{n+i} = h Σ_i b_i f_{n+i} with increasing indices, for order, ρ, σ and zero stability, and its
Adams–Bashforth and Nyström families for the coefficients; closed forms derived by hand in the docstrings below; and
the published recurrences (momentum in its velocity form) run directly.

Convention here: x_{n+1} = Σ_j α_j x_{n−j} + h Σ_j β_j F(x_{n−j}), j = 0 the newest state, so nodepy's
a = (−α_{k−1}, ..., −α_0, 1) and b = (β_{k−1}, ..., β_0, 0).
"""

from __future__ import annotations

import math
import warnings

import nodepy.linear_multistep_method as nlm
import numpy as np
import pytest

from horesnet import Multistep as TopLevelMultistep
from horesnet.schemes import (
    Learnable,
    Multistep,
    SchemeError,
    Tableau,
    get_scheme,
    list_schemes,
    order_conditions,
    register_scheme,
    unregister_scheme,
    warn_flagged,
)

MULTISTEP = ["ab2", "ab3", "average", "leapfrog", "lm", "momentum"]
EPS32 = 2.0**-24


@pytest.fixture
def registry_guard(registries):
    """What a test registers is gone after it (the autouse ``registries`` fixture of conftest.py)."""
    return registries


def nodepy_method(alpha, beta):
    k = len(alpha)
    a, b = np.zeros(k + 1), np.zeros(k + 1)
    a[k] = 1.0
    for j in range(k):
        a[k - 1 - j], b[k - 1 - j] = -alpha[j], beta[j]
    return nlm.LinearMultistepMethod(a, b, description="reference")


def ours_from_nodepy(method):
    a, b = np.array(method.alpha, dtype=float), np.array(method.beta, dtype=float)
    assert b[-1] == 0  # explicit
    k = len(a) - 1
    return [-a[k - 1 - j] / a[k] for j in range(k)], [b[k - 1 - j] / a[k] for j in range(k)]


def reference(alpha, beta):
    """(ρ(1), effective step σ(1)/ρ'(1), order at that step, zero-stable) from nodepy."""
    m = nodepy_method(alpha, beta)
    rho, sigma = m.characteristic_polynomials()
    h = sigma(1) / rho.deriv()(1)
    scaled = nodepy_method(alpha, [x / h for x in beta])
    return rho(1), h, scaled.order(), m.is_zero_stable()


# ----------------------------------------------------------------------------- registry
def test_multistep_schemes_share_the_registry_and_the_default_listing():
    assert list_schemes("multistep") == MULTISTEP
    assert list_schemes() == list_schemes("all") == sorted(set(list_schemes("rk")) | set(MULTISTEP))
    assert not set(list_schemes("rk")) & set(MULTISTEP)
    assert all(isinstance(get_scheme(n), Tableau) for n in list_schemes("rk"))
    assert all(isinstance(get_scheme(n), Multistep) for n in MULTISTEP)
    assert TopLevelMultistep is Multistep
    with pytest.raises(SchemeError, match="kind"):
        list_schemes("implicit")


@pytest.mark.parametrize("name", MULTISTEP)
def test_every_multistep_scheme_matches_nodepy(name):
    m = get_scheme(name)
    rho1, h, order, zero_stable = reference(m.alpha, m.beta)
    assert abs(rho1) < 1e-12 and m.preconsistent and m.consistent
    assert m.effective_step == pytest.approx(h, rel=1e-12)
    assert m.order == order == m.promised_order
    assert m.zero_stable == zero_stable is True
    np.testing.assert_allclose(sorted(m.roots, key=lambda z: (z.real, z.imag)),
                               sorted(np.roots(nodepy_method(m.alpha, m.beta).alpha[::-1].astype(float)),
                                      key=lambda z: (z.real, z.imag)), atol=1e-12)


@pytest.mark.parametrize("steps", [2, 3, 5, 8])
def test_average_padded_to_its_history_matches_nodepy(steps):
    avg = get_scheme("average")
    assert avg.steps is None and avg.history == "stage"
    a, b = avg.stage_coefficients(steps)[-1]
    assert a == (1.0,) + (0.0,) * (steps - 1) and b == a  # identity initialisation: Euler on the newest state
    assert reference(a, b)[1:] == (1.0, 1, True)
    assert avg.residual_weights(steps) == (1.0,) * steps


def test_adams_bashforth_and_leapfrog_coefficients_match_nodepy_families():
    for name, ref in (("ab2", nlm.Adams_Bashforth(2)), ("ab3", nlm.Adams_Bashforth(3)), ("leapfrog", nlm.Nystrom(2))):
        alpha, beta = ours_from_nodepy(ref)
        m = get_scheme(name)
        assert m.alpha == pytest.approx(alpha, abs=1e-16) and m.beta == pytest.approx(beta, rel=1e-15)
        assert m.order == ref.order()


@pytest.mark.parametrize("method", [nlm.Adams_Bashforth(k) for k in (1, 2, 3, 4, 5)]
                         + [nlm.Nystrom(k) for k in (2, 3, 4)], ids=lambda m: m.shortname + str(len(m)))
def test_order_and_zero_stability_of_nodepy_families(method, registry_guard):
    alpha, beta = ours_from_nodepy(method)
    m = register_scheme("family", alpha=alpha, beta=beta)
    assert m.order == method.order() and m.zero_stable == method.is_zero_stable()


def test_random_methods_agree_with_nodepy():
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(300):
        k = int(rng.integers(1, 4))
        alpha = rng.normal(size=k)
        alpha[0] += 1 - alpha.sum()  # Σα = 1
        beta = rng.normal(size=k)
        rho1, h, order, zero_stable = reference(alpha, beta)
        r = np.roots(nodepy_method(alpha, beta).alpha[::-1].astype(float))
        parasitic = np.delete(r, np.argmin(np.abs(r - 1)))  # all but the principal root 1
        if np.any(np.abs(np.abs(parasitic) - 1) < 1e-3):  # near the circle, where the tolerances differ
            continue
        m = Multistep("random", alpha, beta)
        assert m.order == order and m.zero_stable == zero_stable
        assert m.effective_step == pytest.approx(h, rel=1e-9)
        checked += 1
    assert checked > 200


def test_order_conditions_are_relative_and_exact():
    # Dahlquist's explicit 2-step method of order 3 (HNW I, III.3): y_{n+2} + 4y_{n+1} − 5y_n = h(4f_{n+1} + 2f_n)
    m = Multistep("dahlquist", [-4, 5], [4, 2])
    assert m.order == 3 == nodepy_method(m.alpha, m.beta).order()
    assert not m.zero_stable and "root -5" in m.zero_stability_reason
    assert [c.satisfied for c in m.conditions()] == [True, True, True, True, False]
    assert Multistep("ab2_off", [1, 0], [1.5 + 1e-8, -0.5 - 1e-8]).order == 1  # V_2 misses by 2e-8
    ulp = Multistep("ab2_ulp", [1, 0], [np.nextafter(1.5, 2), np.nextafter(-0.5, 0)])
    assert ulp.order == 2
    with pytest.raises(SchemeError, match="rooted-tree"):
        order_conditions("ab2")


# ----------------------------------------------------------------------------- closed forms
def test_leapfrog_root_minus_one_is_simple_and_zero_stable():
    m = get_scheme("leapfrog")
    assert sorted(z.real for z in m.roots) == [-1.0, 1.0] and all(z.imag == 0 for z in m.roots)
    assert m.zero_stable and m.order == 2 and m.effective_step == 1.0
    assert m.invertible and m.inversion_growth == 1.0


@pytest.mark.parametrize("k", np.linspace(-0.1, 0.0, 11))
def test_lm_resnet_over_its_published_initialisation_range(k):
    """ρ(ζ) = ζ² − (1−k)ζ − k = (ζ − 1)(ζ + k): the parasitic root is −k ∈ [0, 0.1], well inside the unit disk.

    The issue's claim that LM-ResNet initialised at k ∈ [−0.1, 0] (per channel: each channel is its own scalar
    recurrence with its own k) has a parasitic root in [−1.1, −1.0] is false for this ρ: every draw is zero-stable.
    """
    m = get_scheme("lm").at(k=float(k))
    assert m.alpha == (1 - k, k) and m.beta == (1.0, 0.0)
    assert sorted(z.real for z in m.roots) == pytest.approx(sorted([1.0, -k]), abs=1e-15)
    assert m.zero_stable and nodepy_method(m.alpha, m.beta).is_zero_stable()
    assert m.effective_step == pytest.approx(1 / (1 + k), rel=1e-15)
    assert m.order == 1 and m.consistent
    if k != 0:
        assert m.inversion_growth == pytest.approx(1 / abs(k), rel=1e-12)


def test_lm_default_and_zero_stable_range():
    lm = get_scheme("lm")
    (fam,) = lm.learnable
    assert fam.name == "k" and fam.init == -0.05 and fam.init_range == (-0.1, 0.0) and fam.learn and fam.per_channel
    assert lm.alpha == (1.05, -0.05) and lm.effective_step == pytest.approx(1 / 0.95)
    lo, hi, lo_in, hi_in = fam.zero_stable_range
    for k in np.linspace(-1.5, 1.5, 61):
        if abs(abs(k) - 1) < 1e-9:
            continue
        at = lm.at(k=float(k))
        assert at.zero_stable == nodepy_method(at.alpha, at.beta).is_zero_stable() == (lo < k < hi)
    assert lm.at(k=lo).zero_stable is lo_in is False  # k = −1: double root 1 (and ρ'(1) = 0)
    assert "multiple root 1 " in lm.at(k=-1.0).zero_stability_reason and not lm.at(k=-1.0).consistent
    assert lm.at(k=hi).zero_stable is hi_in is True  # k = 1: simple roots ±1


def test_momentum_coefficients_are_float64_gamma():
    m = get_scheme("momentum")
    (fam,) = m.learnable
    assert fam.init == 0.9 and not fam.learn
    assert m.alpha == (1 + 0.9, -0.9) and m.beta == (1 - 0.9, 0.0)
    g32 = np.float32(0.9)
    assert m.beta[0] != float(np.float32(1) - g32) and m.alpha[1] != -float(g32)
    assert m.order == 1 and m.effective_step == pytest.approx(1.0, abs=1e-14)
    assert m.inversion_growth == pytest.approx(1 / 0.9, rel=1e-14)
    lo, hi, lo_in, hi_in = fam.zero_stable_range
    for g in np.linspace(-1.4, 1.4, 57):
        if abs(abs(g) - 1) > 1e-9:
            assert m.at(gamma=float(g)).zero_stable == (lo < g < hi)
    assert m.at(gamma=-1.0).zero_stable is lo_in is True  # simple roots ±1
    assert m.at(gamma=1.0).zero_stable is hi_in is False and not m.at(gamma=1.0).consistent  # double root 1, σ(1) = 0


@pytest.mark.parametrize(("gamma", "T"), [(0.9, 8), (0.9, 1), (0.5, 5), (0.99, 30)])
def test_momentum_residual_weights_closed_form(gamma, T):
    """Linearise v_s = γ v_{s−1} + (1−γ) F_s, x_s = x_{s−1} + v_s with v_0 = 0 (unit s = 1..T computes F_s):
    F_s reaches v_m (m >= s) as (1−γ) γ^{m−s}, so its weight on x_T = x_0 + Σ_m v_m is 1 − γ^{T−s+1}.
    (The issue's "1 − γ^{T−s}" is the same with 0-based s = 0..T−1.) Mean: 1 − γ(1−γ^T)/(T(1−γ))."""
    m = get_scheme("momentum").at(gamma=gamma)
    expected = [1 - gamma ** (T - s + 1) for s in range(1, T + 1)]
    assert m.residual_weights(T) == pytest.approx(expected, rel=1e-12, abs=1e-15)
    mean = 1 - gamma * (1 - gamma**T) / (T * (1 - gamma))
    assert sum(m.residual_weights(T)) / T == pytest.approx(mean, rel=1e-12)
    if (gamma, T) == (0.9, 8):
        assert round(mean, 2) == 0.36 and m.summary(8)["residual_weight_mean"] == pytest.approx(mean)


@pytest.mark.parametrize("k", [-0.1, -0.05, 0.3])
def test_lm_residual_weights_closed_form(k):
    """Impulse y at the unit's output: y_{m+1} = (1−k)y_m + k y_{m−1}, y_{−1} = 0, y_0 = 1, so
    y_m = (1 − (−k)^{m+1})/(1 + k): unit s's weight on x_T is (1 − (−k)^{T−s+1})/(1 + k) → h_eff."""
    T = 9
    expected = [(1 - (-k) ** (T - s + 1)) / (1 + k) for s in range(1, T + 1)]
    assert get_scheme("lm").at(k=k).residual_weights(T) == pytest.approx(expected, rel=1e-12)


def test_adams_bashforth_and_leapfrog_residual_weights_closed_form():
    # AB2 after an Euler step: F_1 gets 1 − 1/2, the middle 3/2 − 1/2, the last 3/2
    assert get_scheme("ab2").residual_weights(8) == pytest.approx([0.5] + [1] * 6 + [1.5], abs=1e-15)
    # AB3 after two Euler steps: 1 + 5/12, 1 − 16/12 + 5/12, then 1, ..., 23/12 − 16/12, 23/12
    assert get_scheme("ab3").residual_weights(8) == pytest.approx([17 / 12, 1 / 12] + [1] * 4 + [7 / 12, 23 / 12],
                                                                  abs=1e-15)
    # leapfrog: F_s reaches x_{s}, x_{s+2}, ... only (the root −1): weight 2 when T − s is even, F_1 (Euler) 1
    assert get_scheme("leapfrog").residual_weights(8) == (0.0, 2.0) * 4
    assert get_scheme("leapfrog").residual_weights(7) == (1.0,) + (0.0, 2.0) * 3
    # Runge–Kutta: h·b_i per block (horesnet.models.scale)
    assert get_scheme("rk4").residual_weights(8, step=0.5) == pytest.approx([1 / 12, 1 / 6, 1 / 6, 1 / 12] * 2)
    with pytest.raises(SchemeError, match="whole number"):
        get_scheme("rk4").residual_weights(6)


def simulate(coeffs, x0, units):
    """x_{n+1} = Σ α_j x_{n−j} + Σ β_j F_{n−j}(x_{n−j}), read only from (α, β) per step; F_n: unit n+1."""
    xs, fs = [x0], []
    for n, (a, b) in enumerate(coeffs):
        fs.append(units[n](xs[n]))
        xs.append(sum(aj * xs[n - j] for j, aj in enumerate(a)) + sum(bj * fs[n - j] for j, bj in enumerate(b)))
    return xs


def test_stage_coefficients_reproduce_the_published_recurrences():
    rng = np.random.default_rng(3)
    T = 7
    Ws = [rng.normal(size=(4, 4)) / 2 for _ in range(T)]
    units = [lambda x, W=W: np.tanh(W @ x) for W in Ws]
    x0 = rng.normal(size=4)
    # Momentum ResNet, velocity form with v_0 = 0 (Sander et al. 2021)
    x, v = x0.copy(), np.zeros(4)
    for f in units:
        v = 0.9 * v + (1 - 0.9) * f(x)
        x = x + v
    np.testing.assert_allclose(simulate(get_scheme("momentum").stage_coefficients(T), x0, units)[-1], x, rtol=1e-13)
    # LM-ResNet with x_{−1} = x_0: the first step is the Euler step x_1 = x_0 + F(x_0)
    k, xm, xc = -0.05, x0.copy(), x0.copy()
    for f in units:
        xm, xc = xc, (1 - k) * xc + k * xm + f(xc)
    np.testing.assert_allclose(simulate(get_scheme("lm").stage_coefficients(T), x0, units)[-1], xc, rtol=1e-13)
    # AB2 and leapfrog after one Euler step
    xs, fs = [x0, x0 + units[0](x0)], [units[0](x0)]
    for n in range(1, T):
        fs.append(units[n](xs[n]))
        xs.append(xs[n] + 1.5 * fs[n] - 0.5 * fs[n - 1])
    np.testing.assert_allclose(simulate(get_scheme("ab2").stage_coefficients(T), x0, units)[-1], xs[-1], rtol=1e-13)
    xs = [x0, x0 + units[0](x0)]
    for n in range(1, T):
        xs.append(xs[n - 1] + 2 * units[n](xs[n]))
    np.testing.assert_allclose(simulate(get_scheme("leapfrog").stage_coefficients(T), x0, units)[-1], xs[-1],
                               rtol=1e-13)
    assert get_scheme("momentum").stage_coefficients(1) == (((1.0,), (1 - 0.9,)),)  # v_0 = 0: exactly x_0 + v_1


# ----------------------------------------------------------------------------- inversion
def backward_errors(alpha, steps, delta=1e-12):
    """Run x_{n−k+1} = (x_{n+1} − Σ_{j<k−1} α_j x_{n−j}) / α_{k−1} (F = 0) from exact final states, one perturbed."""
    k = len(alpha)
    err = [0.0] * (k - 1) + [delta]  # errors of x_{T−k+1}..x_T, oldest first; x_T perturbed
    out = []
    for _ in range(steps):
        newest_first = err[::-1]
        older = (newest_first[0] - sum(alpha[j] * newest_first[j + 1] for j in range(k - 1))) / alpha[k - 1]
        err = [older] + err[:-1]
        out.append(abs(older))
    return out


def two_root_sum(r: float, units: int) -> float:
    """Σ_{m<T} |h_m| for ρ = (ζ − 1)(ζ − r), by the closed form: h_m = Σ_{i<=m} g^i = (g^{m+1} − 1)/(g − 1), g = 1/r
    (momentum: r = γ; LM-ResNet: r = −k)."""
    g = 1 / r
    return math.fsum(abs((g ** (m + 1) - 1) / (g - 1)) for m in range(units))


def injected_error(alpha, units, delta=1.0):
    """The error after rebuilding ``units`` states by x_{n−k+1} = (x_{n+1} − Σ_{j<k−1} α_j x_{n−j}) / α_{k−1} (F = 0)
    from exact final states, an error ``delta`` added to every rebuilt state (the model's rounding)."""
    k = len(alpha)
    err = [0.0] * k  # errors of the k newest states, oldest first
    for _ in range(units):
        newest_first = err[::-1]
        older = (newest_first[0] - sum(alpha[j] * newest_first[j + 1] for j in range(k - 1))) / alpha[k - 1] + delta
        err = [older] + err[:-1]
    return err[0]


def impulse_sum(alpha, units):
    """Σ_{m<T} |h_m| from the α's directly: h the response of the reversed recurrence to one unit error."""
    k = len(alpha)
    h, err = [], [0.0] * k
    for m in range(units):
        newest_first = err[::-1]
        older = (newest_first[0] - sum(alpha[j] * newest_first[j + 1] for j in range(k - 1))) / alpha[k - 1]
        older += 1.0 if m == 0 else 0.0
        err = [older] + err[:-1]
        h.append(abs(older))
    return math.fsum(h)


@pytest.mark.parametrize(("name", "growth"), [("momentum", 1 / 0.9), ("lm", 20.0), ("leapfrog", 1.0)])
def test_inversion_growth_matches_the_reversed_recurrence(name, growth):
    m = get_scheme(name)
    assert m.invertible and m.inversion_growth == pytest.approx(growth, rel=1e-12)
    errs = backward_errors(m.alpha, 200 if growth < 5 else 8)  # the mode of the root 1 fades as 1/growth^n
    if growth > 1:
        assert errs[-1] / errs[-2] == pytest.approx(growth, rel=1e-3)
    else:
        assert max(errs) <= 2e-12


@pytest.mark.parametrize("units", [1, 2, 3, 10, 50, 100, 200])
@pytest.mark.parametrize("gamma", [0.5, 0.9, 0.99])
def test_momentum_inversion_error_is_the_closed_form(gamma, units):
    m = get_scheme("momentum").at(gamma=gamma)
    want = EPS32 * two_root_sum(gamma, units)
    assert m.inversion_error(units) == pytest.approx(want, rel=1e-12)
    # every h_m > 0, so an error eps added to each rebuilt state reaches exactly the bound
    assert injected_error(m.alpha, units, EPS32) == pytest.approx(want, rel=1e-9)
    assert m.inversion_error(units, 2.0**-53) == pytest.approx(2.0**-53 * two_root_sum(gamma, units), rel=1e-12)


def test_inversion_error_against_the_fidelity_grid():
    # the figures of docs/multistep.md, measured input errors beside: 1.2e-6, 2.4e-5, 1.15e-4, 1.1e-3 (gamma 0.99)
    momentum = get_scheme("momentum")
    got = [momentum.at(gamma=0.99).inversion_error(t) for t in (10, 50, 100, 200)]
    assert [f"{e:.2g}" for e in got] == ["3.4e-06", "9e-05", "0.00043", "0.0026"]
    assert f"{momentum.inversion_error(10):.2g}" == "4.7e-06" and f"{momentum.inversion_error(50):.2g}" == "0.001"


@pytest.mark.parametrize("units", [1, 2, 3, 7, 8, 100, 1001])
def test_leapfrog_inversion_error_counts_every_other_step(units):
    # roots ±1: h = 1, 0, 1, 0, ...: the error of every other rebuilt state is carried along, the rest cancels
    m = get_scheme("leapfrog")
    assert m.inversion_error(units) == EPS32 * math.ceil(units / 2)
    assert injected_error(m.alpha, units, 1.0) == math.ceil(units / 2)
    assert m.inversion_growth == 1.0


def test_lm_inversion_error_is_the_closed_form():
    m = get_scheme("lm")  # k = -0.05: roots 1 and 0.05
    for units in (1, 2, 3, 4, 8):
        assert m.inversion_error(units) == pytest.approx(EPS32 * two_root_sum(0.05, units), rel=1e-12)
    assert m.at(k=0.5).inversion_error(20) == pytest.approx(EPS32 * two_root_sum(-0.5, 20), rel=1e-12)


def test_inversion_error_with_complex_roots_and_a_padded_step():
    # rho = (z - 1)(z^2 + 0.25): roots 1, +-0.5i; h from the alphas' own recurrence, not from the roots
    m = Multistep("three_step", [1, -0.25, 0.25], [1.25, 0, 0])
    assert m.invertible and sorted(abs(z) for z in m.inversion_roots) == pytest.approx([0.5, 0.5, 1])
    for units in (1, 5, 20, 40):
        assert m.inversion_error(units) == pytest.approx(EPS32 * impulse_sum(m.alpha, units), rel=1e-10)
    # leapfrog with a trailing zero coefficient: its zero root is stripped, as invertible() strips it
    padded = Multistep("leapfrog_padded", [0, 1, 0], [2, 0, 0])
    assert padded.invertible and 0 in padded.roots and 0 not in padded.inversion_roots
    assert padded.inversion_error(9) == get_scheme("leapfrog").inversion_error(9) == 5 * EPS32
    assert padded.safe_inversion_depth(1e-4) == get_scheme("leapfrog").safe_inversion_depth(1e-4)


@pytest.mark.parametrize(("name", "coefficient", "reference"), [
    ("momentum", None, lambda t: two_root_sum(0.9, t)), ("momentum", 0.99, lambda t: two_root_sum(0.99, t)),
    ("lm", None, lambda t: two_root_sum(0.05, t)), ("leapfrog", None, lambda t: math.ceil(t / 2))])
@pytest.mark.parametrize("tolerance", [1e-4, 1e-3])
def test_safe_inversion_depth_is_the_last_depth_within_the_tolerance(name, coefficient, reference, tolerance):
    m = get_scheme(name) if coefficient is None else get_scheme(name).at(gamma=coefficient)
    depth = m.safe_inversion_depth(tolerance)
    assert depth >= 1
    assert EPS32 * reference(depth) <= tolerance < EPS32 * reference(depth + 1)


def test_safe_inversion_depths_at_the_reversible_tolerance():
    # the values docs/multistep.md quotes (tolerance 1e-4, float32)
    assert get_scheme("momentum").safe_inversion_depth(1e-4) == 29
    assert get_scheme("momentum").at(gamma=0.99).safe_inversion_depth(1e-4) == 52
    assert get_scheme("lm").safe_inversion_depth(1e-4) == 3
    assert get_scheme("leapfrog").safe_inversion_depth(1e-4) == 2 * math.floor(1e-4 / EPS32) == 3354


def test_safe_inversion_depth_edges():
    from horesnet.schemes.stage import MAX_SAFE_DEPTH, inversion_error, safe_depth

    assert get_scheme("leapfrog").safe_inversion_depth(1e-4, 2.0**-53) == MAX_SAFE_DEPTH  # "at least 2^20"
    assert safe_depth((1.0, -1.0), 1e-9, 1e-8) == 0  # one step already beyond the tolerance
    assert safe_depth((1.0, 0.0), 1e-3) == 0 and safe_depth(None, 1e-3) == 0  # a zero root: not invertible
    assert inversion_error((1.0, 0.0), 5) == math.inf and inversion_error(None, 5) == math.inf
    assert inversion_error((1.0, 0.5), 1, 1e-3) == 1e-3  # h_0 = 1
    assert get_scheme("momentum").at(gamma=0.5).inversion_error(2000) == math.inf  # 2^2000 overflows
    with pytest.raises(SchemeError, match="eps"):
        inversion_error((1.0, 0.5), 3, 0)


@pytest.mark.parametrize("name", ["ab2", "ab3", "average", "euler", "rk4"])
def test_non_invertible_schemes(name):
    m = get_scheme(name)
    assert not m.invertible and m.inversion_growth == math.inf and m.safe_inversion_depth(1e-3) == 0
    assert m.inversion_roots is None and m.inversion_error(4) == math.inf


def test_momentum_safe_depth_at_float32():
    # eps·Σ_{m<d} (g^{m+1} − 1)/(g − 1) <= 1e-3 with g = 1/0.9; the former model (eps·g^d) allowed 92
    depth = get_scheme("momentum").safe_inversion_depth(1e-3)
    assert depth == 49 and EPS32 * two_root_sum(0.9, 49) <= 1e-3 < EPS32 * two_root_sum(0.9, 50)
    with pytest.raises(SchemeError, match="tolerance"):
        get_scheme("momentum").safe_inversion_depth(0)


# ----------------------------------------------------------------------------- registration
def test_register_query_and_unregister(registry_guard):
    m = register_scheme("my_ab2", alpha=[1, 0], beta=[1.5, -0.5], description="mine")
    assert get_scheme("my_ab2") is m and m.kind == "multistep" and m.order == 2 and m.zero_stable
    assert "my_ab2" in list_schemes("multistep") and "my_ab2" in list_schemes() and "my_ab2" not in list_schemes("rk")
    assert m.starter == "euler" and register_scheme("mine2", alpha=[1.9, -0.9], beta=[0.1, 0]).starter == "repeat"
    with pytest.raises(SchemeError, match="already registered"):
        register_scheme("my_ab2", alpha=[1], beta=[1])
    assert register_scheme("my_ab2", alpha=[1], beta=[1], overwrite=True).order == 1
    with pytest.raises(SchemeError, match="built in"):
        register_scheme("momentum", alpha=[1], beta=[1], overwrite=True)
    with pytest.raises(SchemeError, match="built in"):
        unregister_scheme("lm")
    unregister_scheme("my_ab2")
    assert "my_ab2" not in list_schemes("all")
    with pytest.raises(SchemeError, match="'ab22'.*Did you mean 'ab2'"):
        get_scheme("ab22")


@pytest.mark.parametrize(("kw", "fragment"), [
    (dict(alpha=[0.9, 0], beta=[1, 0]), "sum(alpha)"),
    (dict(alpha=[1, 0], beta=[1, -1]), "sigma(1)"),
    (dict(alpha=[2, -1], beta=[1, 0]), "rho'(1)"),
    (dict(alpha=[-4, 5], beta=[4, 2]), "not zero-stable: ρ has the root -5"),
    (dict(alpha=[-1, 2], beta=[3, 0]), "not zero-stable"),
    (dict(alpha=[1, 0], beta=[1.5]), "same non-zero length"),
    (dict(alpha=[], beta=[]), "same non-zero length"),
    (dict(alpha=[1, float("nan")], beta=[1, 0]), "alpha[1]"),
    (dict(alpha=[1, 0], beta=[float("inf"), 0]), "finite"),
    (dict(alpha=["1"], beta=[1]), "real number"),
    (dict(alpha=[1]), "beta is missing"),
    (dict(alpha=[1], beta=[1], A=[[0]], b=[1]), "either"),
    (dict(alpha=[1, 0], beta=[1, 1], starter="repeat"), "starter 'repeat'"),
    (dict(alpha=[1], beta=[1], steps=3), "unknown options"),
    (dict(alpha=[1], beta=[1], history="all"), "history"),
])
def test_bad_multistep_schemes_are_refused_by_name(kw, fragment, registry_guard):
    with pytest.raises(SchemeError) as info:
        register_scheme("bad_lmm", **kw)
    assert fragment in str(info.value)
    assert "bad_lmm" in str(info.value) or "beta is missing" in fragment or "real number" in fragment
    assert "bad_lmm" not in list_schemes("all")


def test_flagged_unsound_scheme_registers_with_its_warning(registry_guard):
    m = register_scheme("dahlquist3", alpha=[-4, 5], beta=[4, 2], warning="not zero-stable; for study only")
    assert m.order == 3 and not m.zero_stable and "dahlquist3" in list_schemes("multistep")
    with pytest.warns(UserWarning, match="dahlquist3.*order 3.*zero-stable False.*for study only"):
        warn_flagged("dahlquist3")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_flagged("momentum", "lm")


def test_learnable_families_must_keep_consistency_and_match_the_coefficients():
    with pytest.raises(SchemeError, match="sum\\(dalpha\\)"):
        Learnable("k", init=0.0, alpha0=(1, 0), dalpha=(1, 0), beta0=(1, 0), dbeta=(0, 0))
    fam = Learnable("k", init=0.2, alpha0=(1, 0), dalpha=(-1, 1), beta0=(1, 0), dbeta=(0, 0))
    with pytest.raises(SchemeError, match="family"):
        Multistep("lm_bad", [1.0, 0.0], [1.0, 0.0], learnable=(fam,))
    assert Multistep("lm_ok", [0.8, 0.2], [1.0, 0.0], learnable=(fam,)).at(k=0.5).alpha == (0.5, 0.5)
    with pytest.raises(SchemeError, match="affine learnable"):
        get_scheme("ab2").at(k=0.1)


def test_common_properties_of_every_scheme():
    for name in list_schemes("all"):
        s = get_scheme(name).summary(8)
        assert set(s) >= {"order", "consistent", "zero_stable", "effective_step", "inversion_growth",
                          "residual_weight_mean", "steps", "units_per_step", "kind"}
    rk8 = get_scheme("rk8").summary(8)
    assert rk8["units"] == 14 and rk8["residual_weight_mean"] == pytest.approx(1 / 14) and rk8["steps"] == 1
    assert get_scheme("rk4").summary(8)["residual_weight_mean"] == pytest.approx(0.25)
    assert get_scheme("euler").effective_step == 1.0 and get_scheme("ho2021_rk8_published").effective_step > 1.38
