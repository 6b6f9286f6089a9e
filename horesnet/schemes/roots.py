"""The first characteristic polynomial ρ of a linear multistep method: its roots, zero stability, inversion growth.

For x_{n+1} = Σ_{j<k} α_j x_{n−j} + h Σ_{j<k} β_j F(x_{n−j}),

    ρ(ζ) = ζ^k − Σ_j α_j ζ^{k−1−j},        σ(ζ) = Σ_j β_j ζ^{k−1−j}

(E. Hairer, S. P. Nørsett, G. Wanner, "Solving Ordinary Differential Equations I", 2nd ed., Springer 1993,
Sec. III.2, written for our descending indices). The method is zero-stable when every root of ρ lies in the closed
unit disk and the roots on the unit circle are simple (HNW I, Sec. III.3; with consistency it converges, III.4).

How the roots are found. Exact where possible, in rational arithmetic on the float64 coefficients: zero roots (a
zero oldest coefficient) are removed exactly, and the root ζ = 1 of a pre-consistent method (Σα = 1) is divided
out exactly (synthetic division; the remainder is ρ(1), which is at rounding level). What is left is solved
exactly when its degree is at most 1 (every built-in), else with ``numpy.roots`` (eigenvalues of the companion
matrix, backward stable: a simple root is found to about u·cond, a double root splits by about √u ≈ 1.5e-8).

The tolerance ``ROOT_TOLERANCE = 1e-6`` decides "on the unit circle" (| |ζ| − 1 | <= 1e-6), "outside"
(|ζ| > 1 + 1e-6) and "the same root" (|ζ_1 − ζ_2| <= 1e-6). Numerically it lies above the √u splitting of a
double root, so a double root perturbed by rounding is still seen as double. For networks it is also the right
resolution: over n <= 1e5 steps a root of modulus 1 + 1e-6 grows by at most e^0.1, and two roots closer than 1e-6
give the n·ζ^n growth of a double root, so a method inside that band behaves as its verdict says at any depth a
network has. (nodepy uses 1e-13 for both tests, which cannot see a double root that rounding has split.)

Inversion. Running a step backwards solves it for its oldest state, x_{n−k+1} = (x_{n+1} − ...)/α_{k−1}; errors
then propagate through the reversed recurrence, whose roots are 1/ζ_i. Their largest modulus, 1/min_i |ζ_i|, is the
per-step growth factor of the fastest mode (infinite with a zero root, i.e. α_{k−1} = 0), reported as
``inversion_growth``. For a zero-stable two-step method with the root 1 it equals 1/|α_{k−1}| (momentum: 1/γ); for
more steps 1/|α_{k−1}| is the product of all the 1/|ζ_i|. The error of a whole rebuilt stage depends on every root
(the root 1 makes rounding errors accumulate): :func:`horesnet.schemes.stage.inversion_error`.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import NamedTuple

import numpy as np

ROOT_TOLERANCE = 1e-6


class RootAnalysis(NamedTuple):
    """What the roots of ρ say about a multistep method."""

    roots: tuple[complex, ...]  # every root of ρ with multiplicity: the divided-out 1 first, zero roots last
    zero_stable: bool
    reason: str  # why it is not zero-stable ("" when it is)
    growth: float  # 1 / min |ζ_i|: per-step growth of the reversed recurrence's fastest mode (inf with a zero root)


def rho(alpha) -> list[Fraction]:
    """Coefficients of ρ, highest power first: [1, −α_0, ..., −α_{k−1}], exact."""
    return [Fraction(1), *(-Fraction(a) for a in alpha)]


def _divide_by_root_one(coeffs: list[Fraction]) -> list[Fraction]:
    """Quotient of the polynomial (highest power first) by (ζ − 1), by synthetic division; the remainder is dropped."""
    out = [coeffs[0]]
    for c in coeffs[1:-1]:
        out.append(c + out[-1])
    return out


def _solve(coeffs: list[Fraction]) -> list[complex]:
    if len(coeffs) <= 1:
        return []
    if len(coeffs) == 2:
        return [complex(float(-coeffs[1] / coeffs[0]))]
    return [complex(z) for z in np.roots([float(c) for c in coeffs])]


def analyse(alpha, *, root_one: bool) -> RootAnalysis:
    """Roots of ρ for coefficients ``alpha``. ``root_one``: ρ(1) = 0 to within the order tolerance (the caller's
    pre-consistency verdict), so the factor (ζ − 1) is divided out exactly."""
    coeffs = rho(alpha)
    zeros = 0
    while len(coeffs) > 1 and coeffs[-1] == 0:
        coeffs.pop()
        zeros += 1
    ones = []
    if root_one and len(coeffs) > 1:
        coeffs = _divide_by_root_one(coeffs)
        ones = [1 + 0j]
    roots = (*ones, *_solve(coeffs), *([0j] * zeros))
    return RootAnalysis(roots, *_verdict(roots), _growth(roots))


def _verdict(roots: tuple[complex, ...]) -> tuple[bool, str]:
    tol = ROOT_TOLERANCE
    outside = [z for z in roots if abs(z) > 1 + tol]
    if outside:
        z = max(outside, key=abs)
        return False, f"ρ has the root {_fmt(z)} of modulus {abs(z):.6g} > 1 outside the unit disk"
    circle = [z for z in roots if abs(abs(z) - 1) <= tol]
    for i, z in enumerate(circle):
        for w in circle[i + 1:]:
            if abs(z - w) <= tol:
                return False, f"ρ has a multiple root {_fmt(z)} on the unit circle (within {tol:g})"
    return True, ""


def _growth(roots: tuple[complex, ...]) -> float:
    smallest = min((abs(z) for z in roots), default=1.0)
    return math.inf if smallest == 0 else 1 / smallest


def _fmt(z: complex) -> str:
    return f"{z.real:.6g}" if abs(z.imag) <= ROOT_TOLERANCE else f"{z.real:.6g}{z.imag:+.6g}i"
