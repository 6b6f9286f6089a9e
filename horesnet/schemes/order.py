"""Butcher rooted trees and the order conditions of an explicit Runge–Kutta tableau.

A Runge–Kutta method has order p iff for every rooted tree t with |t| <= p the elementary weight
Φ(t) equals 1/γ(t) (J. C. Butcher, "Numerical Methods for Ordinary Differential Equations", 3rd ed.,
Wiley 2016, Sec. 31 and Thm. 315A). With Φvec(τ) = 1 (the one-node tree) and, for a tree whose root
has children t_1..t_m, Φvec(t) = Π_k A·Φvec(t_k) (elementwise product), Φ(t) = b·Φvec(t) and
γ(t) = |t| Π_k γ(t_k).

A tree is stored in canonical form: the sorted tuple of its root's children, each itself a canonical
tree; the one-node tree is ``()``. The counts for 1..9 nodes are 1, 1, 2, 4, 9, 20, 48, 115, 286
(OEIS A000081).

Conditions are evaluated exactly, in rational arithmetic on the float64 coefficients (every float64 is a
dyadic rational), so the only error is the rounding of the coefficients themselves. A condition holds when
its error relative to the value it must take is small:

    |Φ(t)·γ(t) − 1| <= RELATIVE_TOLERANCE = 1e-10.

Why relative to 1/γ(t), and why 1e-10: rounding each coefficient of an exact method to float64 perturbs it by a
relative u = 2^-53 ≈ 1.1e-16, which moves Φ(t)γ(t) away from 1 by about κ(t)·u, κ(t) being the condition number
of the sum Φ(t) in the coefficients. For the built-in tableaux the largest such residual of a condition that holds
exactly is 5.3e-14 (Verner's RK8 at order 8, κ ≈ 500; the rational low-order tableaux stay below 1e-15), while
RK8's order-9 conditions, which genuinely fail, miss by at least 6.2e-4. 1e-10 accepts rounding with κ up to
about 1e6 (2000 times RK8's worst) and stays 6 decades below RK8's smallest genuine failure. The former criterion,
|Φ − 1/γ| <= 1e-12·max(1, Φ_abs(t)) with Φ_abs computed from |A| and |b|, scaled with Φ_abs·γ, which exceeds
1e21 for RK8's trees (the worst-case rounding bound |t|·u·Φ_abs·γ is useless there): it accepted 149 of RK8's
order-9 conditions that miss by more than 1e-4, and gave order 2 to A = [[0,0,0],[1e12,0,0],[1e12,0,0]],
b = [1,1,−1], whose Σ b c is 0, not 1/2. A tableau whose coefficients are so large that their rounding alone moves
a condition by more than 1e-10 of its value gets the order that its stored float64 values achieve.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from functools import cache
from typing import NamedTuple, Protocol

from .errors import SchemeError


class Tableau(Protocol):
    """What the order conditions read from a tableau (``horesnet.schemes.Tableau`` provides it)."""

    @property
    def increments(self) -> int: ...

    def nonzero_A(self) -> tuple: ...

    def nonzero_b(self) -> tuple: ...

Tree = tuple  # canonical rooted tree: sorted tuple of child trees; () is the one-node tree

MAX_TREE_ORDER = 12  # 12 nodes = 4766 trees; beyond that enumeration is pointless for RK analysis
MAX_COMPUTED_ORDER = 9  # `Tableau.order` never reports more than this
RELATIVE_TOLERANCE = 1e-10  # on |Φγ − 1|; justified in the module docstring


class OrderCondition(NamedTuple):
    """One Butcher order condition Φ(t) = 1/γ(t) evaluated for a tableau."""

    order: int  # number of nodes |t|
    tree: Tree  # canonical form (see module docstring)
    phi: float  # elementary weight Φ(t) = b·Φvec(t)
    one_over_gamma: float  # 1/γ(t), the value Φ(t) must equal
    residual: float  # Φ(t) − 1/γ(t)
    satisfied: bool  # |relative_residual| <= RELATIVE_TOLERANCE (1e-10)
    relative_residual: float  # Φ(t)·γ(t) − 1, the residual relative to the value Φ(t) must take


def _check_order(order, what: str) -> int:
    if isinstance(order, bool) or not isinstance(order, int) or not 1 <= order <= MAX_TREE_ORDER:
        raise SchemeError(
            f"{what} must be an integer between 1 and {MAX_TREE_ORDER} (number of tree nodes); "
            f"got {order!r}."
        )
    return order


@cache
def _trees(n: int) -> tuple[Tree, ...]:
    """All canonical rooted trees with n nodes, sorted."""
    if n == 1:
        return ((),)
    smaller = [t for k in range(1, n) for t in _trees(k)]  # candidate children, fixed index order
    sizes = [tree_order(t) for t in smaller]
    found: set[Tree] = set()

    def forests(remaining: int, start: int, acc: list) -> Iterator[tuple]:
        # multisets of children (non-decreasing index) whose sizes sum to `remaining`
        if remaining == 0:
            yield tuple(acc)
            return
        for i in range(start, len(smaller)):
            if sizes[i] <= remaining:
                acc.append(smaller[i])
                yield from forests(remaining - sizes[i], i, acc)
                acc.pop()

    for children in forests(n - 1, 0, []):
        found.add(tuple(sorted(children)))
    return tuple(sorted(found))


def rooted_trees(order: int) -> list[Tree]:
    """All rooted trees with exactly ``order`` nodes, in canonical form (Butcher 2016, Sec. 30)."""
    return list(_trees(_check_order(order, "rooted_trees(order)")))


@cache
def tree_order(tree: Tree) -> int:
    """Number of nodes |t|."""
    return 1 + sum(tree_order(child) for child in tree)


@cache
def tree_density(tree: Tree) -> int:
    """The density γ(t) = |t| · Π γ(children)."""
    gamma = tree_order(tree)
    for child in tree:
        gamma *= tree_density(child)
    return gamma


def format_tree(tree: Tree) -> str:
    """Butcher's bracket notation: τ for the one-node tree, [t1 t2 ...] for a root with children."""
    if not tree:
        return "τ"
    return "[" + " ".join(format_tree(child) for child in tree) + "]"


class _Evaluator:
    """Memoised Φvec and A·Φvec for one tableau, in exact rational arithmetic on its float64 coefficients."""

    def __init__(self, tableau: Tableau) -> None:
        self.s = tableau.increments
        self.rows = [[(j, Fraction(a)) for j, a in row] for row in tableau.nonzero_A()]
        self.b = [(j, Fraction(w)) for j, w in tableau.nonzero_b()]
        self._phi: dict[Tree, list[Fraction]] = {}
        self._aphi: dict[Tree, list[Fraction]] = {}

    def _a_phi(self, tree: Tree) -> list[Fraction]:
        if tree not in self._aphi:
            vec = self.phi_vec(tree)
            self._aphi[tree] = [sum((a * vec[j] for j, a in row), Fraction(0)) for row in self.rows]
        return self._aphi[tree]

    def phi_vec(self, tree: Tree) -> list[Fraction]:
        if tree not in self._phi:
            vec = [Fraction(1)] * self.s
            for child in tree:
                vec = [x * y for x, y in zip(vec, self._a_phi(child), strict=True)]
            self._phi[tree] = vec
        return self._phi[tree]

    def condition(self, tree: Tree) -> OrderCondition:
        vec = self.phi_vec(tree)
        phi = sum((w * vec[j] for j, w in self.b), Fraction(0))
        gamma = tree_density(tree)
        relative = phi * gamma - 1  # exact
        ok = abs(relative) <= RELATIVE_TOLERANCE
        return OrderCondition(tree_order(tree), tree, float(phi), 1 / gamma, float(phi - Fraction(1, gamma)),
                              bool(ok), float(relative))


def _conditions(tableau: Tableau, max_order: int) -> Iterator[OrderCondition]:
    ev = _Evaluator(tableau)
    for n in range(1, max_order + 1):
        for tree in _trees(n):
            yield ev.condition(tree)


def conditions(tableau: Tableau, max_order: int = MAX_COMPUTED_ORDER) -> list[OrderCondition]:
    """Evaluate every order condition Φ(t) = 1/γ(t) for trees with 1..``max_order`` nodes: one
    :class:`OrderCondition` per tree, ordered by number of nodes then canonical form (Butcher 2016, Thm. 315A).
    ``horesnet.schemes.order_conditions`` also accepts a registered scheme name."""
    return list(_conditions(tableau, _check_order(max_order, "order_conditions(max_order)")))


def computed_order(tableau: Tableau, max_order: int = MAX_COMPUTED_ORDER) -> int:
    """Largest p <= ``max_order`` such that all conditions for trees with 1..p nodes hold (0 if none).

    Trees come ordered by size, so the first failing condition fixes the order; evaluation stops there.
    """
    for cond in _conditions(tableau, max_order):
        if not cond.satisfied:
            return cond.order - 1
    return max_order
