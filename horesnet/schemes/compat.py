"""Compatibility schemes: tableaux that reproduce what published code computes, flagged as unsound.

``ho2021_rk8_published`` is the RK8 block of the HO-ResNet authors' public code (Luo et al. 2021; docs/ho2021.md):
Verner's exact 14-increment tableau (the built-in ``rk8``) with the four entries their code types differently.
It is not a valid Runge–Kutta method (Σb = 1.386, computed order 0); it exists only so that a user can separate
the effect of the scheme from the effect of those coefficient errors. ``rk8`` itself is never changed.
"""

from __future__ import annotations

from fractions import Fraction as F

from .tableau import Tableau

HO2021_DOC = "docs/ho2021.md"

# The authors' values, 1-based (i, j) as in docs/ho2021.md; Verner's correct values are in the built-in rk8.
HO2021_A_CHANGES = {(6, 1): 0.053333333333, (12, 7): 847.8814814814815, (12, 10): 605.7315968367965}
HO2021_B_CHANGES = {8: F(27, 140)}   # Verner: -27/140

HO2021_WARNING = (
    "it reproduces the HO-ResNet authors' published RK8 block, whose coefficients differ from Verner's in "
    f"A[6,1], A[12,7], A[12,10] and the sign of b[8]: it is not a valid Runge-Kutta method. Use block=rk8 for "
    f"Verner's 8th-order method; see {HO2021_DOC}."
)


def with_entries(base: Tableau, name: str, a_changes: dict, b_changes: dict, **kwargs) -> Tableau:
    """``base`` with A[i,j] and b[i] (1-based) replaced by the given values, under a new name."""
    A = [list(row) for row in base.A]
    b = list(base.b)
    for (i, j), value in a_changes.items():
        A[i - 1][j - 1] = float(value)
    for i, value in b_changes.items():
        b[i - 1] = float(value)
    return Tableau(name, A, b, **kwargs)


def ho2021_rk8_published(rk8: Tableau) -> Tableau:
    """The HO-ResNet authors' published RK8 tableau, built from Verner's ``rk8``."""
    return with_entries(
        rk8, "ho2021_rk8_published", HO2021_A_CHANGES, HO2021_B_CHANGES, warning=HO2021_WARNING,
        description="compatibility only: the HO-ResNet authors' published RK8 block (rk8 with 4 wrong entries)",
    )
