"""Tests of horesnet.schemes: rooted trees, computed order, built-in tableaux, registry, bad input.

Expected values come from outside the code under test: OEIS A000081 (tree counts), the hand-written
order conditions up to order 4 (Butcher 2016, Sec. 31), the nodes c of Verner's paper listed
separately in docs/design.md ("Schemes"), and the empirical convergence order of an independent integrator on the
Kepler problem, whose exact solution is known (Kepler's equation).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import FrozenInstanceError

import numpy as np
import pytest

from horesnet.schemes import (
    SchemeError,
    Tableau,
    get_scheme,
    list_schemes,
    order_conditions,
    register_scheme,
    rooted_trees,
    tree_density,
)
from horesnet.schemes.registry import unregister_scheme

from ._analysis_helpers import PROMISED

S6 = math.sqrt(6)
RK8_C = [0, 1 / 12, 1 / 9, 1 / 6, (2 + 2 * S6) / 15, (6 + S6) / 15, (6 - S6) / 15, 2 / 3, 1 / 2, 1 / 3,
         1 / 4, 4 / 3, 5 / 6, 1]  # docs/design.md, listed independently of A


def modified(tab: Tableau, *, a=None, b=None) -> Tableau:
    """Copy of ``tab`` with A[i][j] (0-based) or b[i] replaced: ``a=(i, j, value)``, ``b=(i, value)``."""
    A = [list(row) for row in tab.A]
    w = list(tab.b)
    if a is not None:
        A[a[0]][a[1]] = a[2]
    if b is not None:
        w[b[0]] = b[1]
    return Tableau(tab.name + "_modified", A, w)


# ----------------------------------------------------------------------------- rooted trees
def test_rooted_tree_counts_match_oeis_a000081():
    assert [len(rooted_trees(n)) for n in range(1, 10)] == [1, 1, 2, 4, 9, 20, 48, 115, 286]


def _size(t):
    return 1 + sum(_size(c) for c in t)


def _symmetry(t):
    """σ(t): order of the automorphism group (computed here, independently of the library)."""
    sigma = 1
    for child, mult in Counter(t).items():
        sigma *= _symmetry(child) ** mult * math.factorial(mult)
    return sigma


@pytest.mark.parametrize("n", range(1, 10))
def test_trees_distinct_canonical_and_gamma_consistent(n):
    trees = rooted_trees(n)
    assert len(set(trees)) == len(trees)
    assert all(_size(t) == n for t in trees)
    # Butcher 2016, Sec. 30: the monotone labellings α(t) = n!/(σ(t)γ(t)) of all n-node trees number (n-1)!.
    total = sum(math.factorial(n) // (_symmetry(t) * tree_density(t)) for t in trees)
    assert total == math.factorial(n - 1)


def test_order_conditions_match_hand_written_conditions_up_to_order_4():
    rng = np.random.default_rng(0)
    A = np.tril(rng.normal(size=(4, 4)), -1)
    b = rng.normal(size=4)
    c = A.sum(axis=1)
    leaf = ()
    t2 = (leaf,)
    expected = {  # tree: (Φ by hand, 1/γ)
        leaf: (b.sum(), 1), t2: (b @ c, 1 / 2),
        (leaf, leaf): (b @ c**2, 1 / 3), (t2,): (b @ A @ c, 1 / 6),
        (leaf, leaf, leaf): (b @ c**3, 1 / 4), (leaf, t2): (b @ (c * (A @ c)), 1 / 8),
        ((leaf, leaf),): (b @ A @ c**2, 1 / 12), ((t2,),): (b @ A @ A @ c, 1 / 24),
    }
    records = order_conditions(Tableau("random", A, b), max_order=4)
    assert len(records) == 8
    for r in records:
        phi, inv_gamma = expected[r.tree]
        assert r.phi == pytest.approx(phi, rel=1e-12, abs=1e-14)
        assert r.one_over_gamma == pytest.approx(inv_gamma, rel=1e-15)
        assert r.residual == pytest.approx(phi - inv_gamma, rel=1e-10, abs=1e-14)
        assert not r.satisfied


# ----------------------------------------------------------------------------- built-in tableaux
def test_builtin_names():
    assert set(PROMISED) <= set(list_schemes())
    assert list_schemes() == sorted(list_schemes())


@pytest.mark.parametrize("name", sorted(PROMISED))
def test_builtin_stages_and_computed_order(name):
    tab = get_scheme(name)
    stages, order = PROMISED[name]
    assert tab.increments == stages == len(tab.A) == len(tab.b)
    assert tab.order == order
    assert tab.promised_order == order


@pytest.mark.parametrize("name", sorted(PROMISED))
def test_builtin_consistency(name):
    tab = get_scheme(name)
    assert tab.consistent
    assert math.fsum(tab.b) == pytest.approx(1.0, abs=1e-14)
    assert tab.c == pytest.approx([math.fsum(row) for row in tab.A], abs=1e-15)
    for i, row in enumerate(tab.A):
        assert all(v == 0.0 for v in row[i:])
    assert all(isinstance(v, float) for row in tab.A for v in row)


def test_rk8_nodes_match_reference_and_weights_are_sparse():
    tab = get_scheme("rk8")
    for row, ci, ref in zip(tab.A, tab.c, RK8_C, strict=True):  # c_i = Σ_j a_ij up to input rounding
        assert abs(ci - ref) <= 1e-15 * math.fsum(abs(a) for a in row) + 1e-16
    assert [i for i, _ in tab.nonzero_b()] == [0, 7, 8, 9, 10, 11, 12, 13]  # k_1 and k_8..k_14
    assert [len(row) for row in tab.nonzero_A()] == [0, 1, 2, 2, 3, 3, 4, 3, 4, 5, 5, 7, 8, 9]
    assert tab.nonzero_A()[11][-1] == (10, pytest.approx(-26624 / 81))


def test_rk8_satisfies_all_200_conditions_up_to_order_8_and_fails_order_9():
    records = order_conditions("rk8", max_order=9)
    upto8 = [r for r in records if r.order <= 8]
    assert len(upto8) == 200
    assert all(r.satisfied for r in upto8)
    assert max(abs(r.residual) for r in upto8) < 1e-13
    ninth = [r for r in records if r.order == 9]
    assert len(ninth) == 286
    assert any(not r.satisfied and abs(r.residual) > 1e-7 for r in ninth)


def test_no_order_9_condition_of_rk8_is_reported_satisfied():
    # Verner's RK8 has order exactly 8: every one of its 286 order-9 conditions misses 1/γ by at least 6e-4 of
    # its value. The former absolute criterion (1e-12 · Φ computed with |A|, |b|) reported all 149 of them satisfied.
    ninth = [r for r in order_conditions("rk8", max_order=9) if r.order == 9]
    assert len(ninth) == 286
    assert [r.tree for r in ninth if r.satisfied] == []
    assert min(abs(r.phi * tree_density(r.tree) - 1) for r in ninth) > 1e-4


def test_order_tolerance_is_relative_to_the_condition():
    # Σ b = 1 but Σ b c = 1e12 - 1e12 = 0, not 1/2: order 1. The former criterion scaled its tolerance with
    # Φ(|A|, |b|) = 2e12 and reported order 2.
    big = Tableau("big", [[0, 0, 0], [1e12, 0, 0], [1e12, 0, 0]], [1, 1, -1])
    assert big.consistent and big.order == 1
    cond = order_conditions(big, max_order=2)[1]
    assert cond.phi == 0.0 and not cond.satisfied and cond.relative_residual == -1.0
    # a condition missed by 1e-8 of its value fails; the RK8 order-8 conditions hold to rounding (< 1e-13)
    shifted = Tableau("rk4_shifted", get_scheme("rk4").A, (1 / 6, 1 / 3 + 1e-8, 1 / 3 - 1e-8, 1 / 6))
    assert shifted.order == 2
    upto8 = order_conditions("rk8", max_order=8)
    assert all(r.satisfied and abs(r.phi * tree_density(r.tree) - 1) < 1e-13 for r in upto8)
    assert all(r.relative_residual == pytest.approx(r.phi * tree_density(r.tree) - 1, abs=1e-15)
               for r in upto8)


def test_rounding_rk8_coefficients_by_an_ulp_keeps_order_8():
    # the tolerance must absorb what float64 rounding of the coefficients can do: move every coefficient of rk8
    # by one unit in the last place, in random directions
    tab, rng = get_scheme("rk8"), np.random.default_rng(1)
    for _ in range(3):
        A = [[float(np.nextafter(a, np.inf * rng.choice([-1, 1]))) if a else 0.0 for a in row] for row in tab.A]
        b = [float(np.nextafter(w, np.inf * rng.choice([-1, 1]))) if w else 0.0 for w in tab.b]
        assert Tableau("rk8_ulp", A, b).order == 8


@pytest.mark.parametrize("name", sorted(PROMISED))
def test_every_builtin_keeps_its_order_under_the_relative_criterion(name):
    records = order_conditions(name, max_order=PROMISED[name][1] + 1)
    order = PROMISED[name][1]
    assert all(r.satisfied for r in records if r.order <= order)
    assert not all(r.satisfied for r in records if r.order == order + 1)
    assert get_scheme(name).order == order


def test_corrupted_rk8_loses_order():
    tab = get_scheme("rk8")
    a_12_7 = tab.A[11][6]
    assert modified(tab, a=(11, 6, a_12_7 * (1 + 1e-6))).order < 8
    flipped = modified(tab, b=(7, -tab.b[7]))  # the sign error of the public HO-ResNet code
    assert math.fsum(flipped.b) == pytest.approx(1.386, abs=1e-3)
    assert flipped.order == 0 and not flipped.consistent


def test_every_rk8_coefficient_matters_at_1e_6_relative():
    tab = get_scheme("rk8")
    survivors = []
    for i, row in enumerate(tab.nonzero_A()):
        for j, a in row:
            if modified(tab, a=(i, j, a * (1 + 1e-6))).order >= 8:
                survivors.append((i + 1, j + 1))
    for i, w in tab.nonzero_b():
        if modified(tab, b=(i, w * (1 + 1e-6))).order >= 8:
            survivors.append(("b", i + 1))
    assert survivors == []


def test_corrupted_rk4_loses_order():
    tab = get_scheme("rk4")
    assert modified(tab, b=(1, 1 / 3 + 1e-3)).order == 0
    shifted = Tableau("rk4_shifted", tab.A, (1 / 6, 1 / 3 + 1e-3, 1 / 3 - 1e-3, 1 / 6))  # still Σb=1, Σbc=1/2
    assert shifted.order == 2
    assert modified(tab, a=(3, 2, 1 + 1e-7)).order == 1  # moves c_4: Σ b c = 1/2 fails
    A = [list(row) for row in tab.A]
    A[3][0], A[3][2] = -1e-7, 1 + 1e-7  # same c, but Σ b A c = 1/6 fails
    assert Tableau("rk4_a", A, tab.b).order == 2


# ----------------------------------------------------------------------------- empirical order
ECC = 0.5


def kepler_exact(t: float) -> np.ndarray:
    """Exact (q1, q2, p1, p2) of the Kepler orbit with a = μ = 1, eccentricity ECC, pericentre at t=0."""
    E = t
    for _ in range(60):  # Newton on Kepler's equation E - e sin E = t
        E -= (E - ECC * math.sin(E) - t) / (1 - ECC * math.cos(E))
    r, w = 1 - ECC * math.cos(E), math.sqrt(1 - ECC**2)
    return np.array([math.cos(E) - ECC, w * math.sin(E), -math.sin(E) / r, w * math.cos(E) / r])


def kepler_rhs(t: float, y: np.ndarray) -> np.ndarray:
    r3 = (y[0] ** 2 + y[1] ** 2) ** 1.5
    return np.array([y[2], y[3], -y[0] / r3, -y[1] / r3])


def integrate(A, b, f, y0, T, n):
    """Fixed-step explicit Runge–Kutta, written from the textbook formula (reads only A and b)."""
    s, h, y, t = len(b), T / n, np.array(y0, dtype=float), 0.0
    c = [sum(row[:i]) for i, row in enumerate(A)]
    for _ in range(n):
        k = []
        for i in range(s):
            yi = y + h * sum((A[i][j] * k[j] for j in range(i) if A[i][j] != 0), np.zeros_like(y))
            k.append(f(t + c[i] * h, yi))
        y = y + h * sum((b[i] * k[i] for i in range(s) if b[i] != 0), np.zeros_like(y))
        t += h
    return y


STEPS = {1: 400, 2: 100, 3: 50, 4: 40, 8: 16}  # coarse step counts on [0, 2]; the fine run doubles them


@pytest.mark.parametrize("name", sorted(PROMISED))
def test_empirical_convergence_order_on_kepler_problem(name):
    tab = get_scheme(name)
    order = PROMISED[name][1]
    T, y0 = 2.0, kepler_exact(0.0)
    exact = kepler_exact(T)
    n = STEPS[order]
    err = [np.max(np.abs(integrate(tab.A, tab.b, kepler_rhs, y0, T, m) - exact)) for m in (n, 2 * n)]
    assert err[1] > 1e-13  # still above round-off
    observed = math.log2(err[0] / err[1])
    if order <= 4:
        assert abs(observed - order) <= 0.3, (name, observed)
    else:
        assert 7.0 <= observed <= order + 0.5, (name, observed)


def test_empirical_order_detects_a_corrupted_tableau():
    tab = get_scheme("rk4")
    bad = (1 / 6, 1 / 3 + 1e-2, 1 / 3 - 1e-2, 1 / 6)
    T, y0, exact = 2.0, kepler_exact(0.0), kepler_exact(2.0)
    err = [np.max(np.abs(integrate(tab.A, bad, kepler_rhs, y0, T, m) - exact)) for m in (80, 160)]
    assert math.log2(err[0] / err[1]) < 3.0


# ----------------------------------------------------------------------------- Tableau type
def test_tableau_is_immutable_and_normalised():
    tab = Tableau("t", np.array([[0, 0], [0.5, 0]]), [0, 1])
    assert tab.A == ((0.0, 0.0), (0.5, 0.0)) and tab.b == (0.0, 1.0)
    assert tab.c == (0.0, 0.5)
    assert tab.nonzero_A() == ((), ((0, 0.5),))
    assert tab.nonzero_b() == ((1, 1.0),)
    assert tab == Tableau("t", [[0, 0], [0.5, 0]], (0.0, 1.0))
    with pytest.raises(FrozenInstanceError):
        tab.b = (1.0, 0.0)
    assert get_scheme(tab) is tab


@pytest.mark.parametrize(
    ("A", "b", "fragment"),
    [
        ([[0, 0, 0], [1, 0, 0]], [0.5, 0.5], "not square"),
        ([[0, 0], [1]], [0.5, 0.5], "ragged"),
        ([[0, 0], [1, 0.5]], [0.5, 0.5], "A[2,2]"),
        ([[0, 0.3], [1, 0]], [0.5, 0.5], "A[1,2]"),
        ([[0, 0], [1, 0]], [1.0], "b of scheme 'bad' has 1 entries"),
        ([[0, 0], [float("nan"), 0]], [0.5, 0.5], "A[2,1]"),
        ([[0, 0], [1, 0]], [0.5, float("inf")], "finite"),
        ([[0, 0], ["x", 0]], [0.5, 0.5], "real number"),
        ([], [], "zero stages"),
    ],
)
def test_bad_tableaux_raise_scheme_error(A, b, fragment):
    with pytest.raises(SchemeError) as info:
        Tableau("bad", A, b)
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


def test_unknown_name_lists_valid_names():
    with pytest.raises(SchemeError) as info:
        get_scheme("rk5")
    msg = str(info.value)
    assert "'rk5'" in msg
    assert all(name in msg for name in PROMISED)


@pytest.mark.parametrize("bad", [0, 10**6, 1.5, "4"])
def test_bad_tree_orders(bad):
    with pytest.raises(SchemeError):
        rooted_trees(bad)
    with pytest.raises(SchemeError):
        order_conditions("rk4", max_order=bad)


# ----------------------------------------------------------------------------- registry
def test_register_user_scheme(scheme_registry_guard):
    alpha = 0.75  # the generic 2-stage second-order family
    tab = register_scheme("alpha075", [[0, 0], [alpha, 0]], [1 - 1 / (2 * alpha), 1 / (2 * alpha)],
                          description="generic alpha method")
    assert "alpha075" in list_schemes()
    assert get_scheme("alpha075") is tab
    assert tab.order == 2 and tab.consistent and tab.promised_order is None
    assert order_conditions("alpha075", 2)[-1].satisfied


def test_duplicate_and_overwrite(scheme_registry_guard):
    register_scheme("mine", [[0]], [1])
    with pytest.raises(SchemeError, match="already registered"):
        register_scheme("mine", [[0, 0], [1, 0]], [0.5, 0.5])
    assert get_scheme("mine").order == 1
    assert register_scheme("mine", [[0, 0], [1, 0]], [0.5, 0.5], overwrite=True).order == 2
    with pytest.raises(SchemeError, match="built in"):
        register_scheme("rk4", [[0]], [1], overwrite=True)
    with pytest.raises(SchemeError, match="built in"):
        unregister_scheme("euler")
    unregister_scheme("mine")
    assert "mine" not in list_schemes()


@pytest.mark.parametrize("name", ["ode", "ODE", "", "2stage", "my-rk", "a b", None])
def test_invalid_names_rejected(name, scheme_registry_guard):
    before = set(list_schemes())
    with pytest.raises(SchemeError):
        register_scheme(name, [[0]], [1])
    assert set(list_schemes()) == before


def test_inconsistent_tableau_registers_with_order_zero(scheme_registry_guard):
    tab = register_scheme("broken", [[0, 0], [1, 0]], [0.5, 0.6])
    assert not tab.consistent and tab.order == 0
    with pytest.raises(SchemeError):
        register_scheme("broken2", [[0, 0], [1, 0]], [0.5])
    assert "broken2" not in list_schemes()
