"""Built-in explicit Runge–Kutta tableaux, as data.

Low-order methods: J. C. Butcher, "Numerical Methods for Ordinary Differential Equations", 3rd ed.,
Wiley 2016, Sec. 23 (Euler; midpoint, Heun and Ralston's 2-stage methods; Kutta's and Heun's
third-order methods; the classic fourth-order method and Kutta's 3/8 rule). ``rk8`` is the 14-stage
8th-order member of Verner's RK8(9) pair (J. H. Verner, SIAM J. Numer. Anal. 15(4), 1978; docs/design.md,
"Schemes"), checked by the order conditions (tests/test_schemes.py). Rational entries are exact Fractions
rounded once to float64; RK8's entries in sqrt(6) are evaluated with mpmath at 50 digits and rounded once to nearest.
"""

from __future__ import annotations

from fractions import Fraction as F

import mpmath
from mpmath.libmp import to_float

from .tableau import Tableau


def _dense(s: int, entries: dict[tuple[int, int], float]) -> list[list[float]]:
    """s×s matrix from {(i, j): value} with 1-based (i, j), zeros elsewhere."""
    A = [[0.0] * s for _ in range(s)]
    for (i, j), v in entries.items():
        A[i - 1][j - 1] = float(v)
    return A


# ---------------------------------------------------------------- Verner's RK8 (14 stages)
# Each entry is (p, q, r) meaning (p + q*sqrt(6)) / r; 1-based indices as in verner8.md.
_RK8_A = {
    (2, 1): (1, 0, 12),
    (3, 1): (1, 0, 27), (3, 2): (2, 0, 27),
    (4, 1): (1, 0, 24), (4, 3): (1, 0, 8),
    (5, 1): (4, 94, 375), (5, 3): (-94, -84, 125), (5, 4): (328, 208, 375),
    (6, 1): (9, -1, 150), (6, 4): (312, 32, 1425), (6, 5): (69, 29, 570),
    (7, 1): (927, -347, 1250), (7, 4): (-16248, 7328, 9375), (7, 5): (-489, 179, 3750),
    (7, 6): (14268, -5798, 9375),
    (8, 1): (2, 0, 27), (8, 6): (16, -1, 54), (8, 7): (16, 1, 54),
    (9, 1): (19, 0, 256), (9, 6): (118, -23, 512), (9, 7): (118, 23, 512), (9, 8): (-9, 0, 256),
    (10, 1): (11, 0, 144), (10, 6): (266, -1, 864), (10, 7): (266, 1, 864), (10, 8): (-1, 0, 16),
    (10, 9): (-8, 0, 27),
    (11, 1): (5034, -271, 61440), (11, 7): (7859, -1626, 10240), (11, 8): (-2232, 813, 20480),
    (11, 9): (-594, 271, 960), (11, 10): (657, -813, 5120),
    (12, 1): (5996, -3794, 405), (12, 6): (-4342, -338, 9), (12, 7): (154922, -40458, 135),
    (12, 8): (-4176, 3794, 45), (12, 9): (-340864, 242816, 405), (12, 10): (26304, -15176, 45),
    (12, 11): (-26624, 0, 81),
    (13, 1): (3793, 2168, 103680), (13, 6): (4042, 2263, 13824), (13, 7): (-231278, 40717, 69120),
    (13, 8): (7947, -2168, 11520), (13, 9): (1048, -542, 405), (13, 10): (-1383, 542, 720),
    (13, 11): (2624, 0, 1053), (13, 12): (3, 0, 1664),
    (14, 1): (-137, 0, 1296), (14, 6): (5642, -337, 864), (14, 7): (5642, 337, 864),
    (14, 8): (-299, 0, 48), (14, 9): (184, 0, 81), (14, 10): (-44, 0, 9), (14, 11): (-5120, 0, 1053),
    (14, 12): (-11, 0, 468), (14, 13): (16, 0, 9),
}
_RK8_B = (F(103, 1680), 0, 0, 0, 0, 0, 0, F(-27, 140), F(76, 105), F(-201, 280), F(1024, 1365),
          F(3, 7280), F(12, 35), F(9, 280))


def _surd6(p: int, q: int, r: int) -> float:
    """(p + q*sqrt(6)) / r rounded once to the nearest float64."""
    if q == 0:
        return float(F(p, r))
    with mpmath.workdps(50):
        x = (mpmath.mpf(p) + q * mpmath.sqrt(6)) / r
        return to_float(x._mpf_, rnd="n")


def _rk8() -> Tableau:
    A = _dense(14, {ij: _surd6(*pqr) for ij, pqr in _RK8_A.items()})
    return Tableau(
        "rk8", A, [float(w) for w in _RK8_B], promised_order=8,
        description="Verner's 14-stage 8th-order method (from his RK8(9) pair, SIAM J. Numer. Anal. 1978).",
    )


def _tab(name: str, rows: dict, b, order: int, description: str) -> Tableau:
    return Tableau(name, _dense(len(b), rows), [float(w) for w in b], description=description,
                   promised_order=order)


BUILTIN_TABLEAUX: tuple[Tableau, ...] = (
    _tab("euler", {}, (1,), 1, "Forward Euler: one step is exactly a standard ResNet block."),
    _tab("midpoint", {(2, 1): F(1, 2)}, (0, 1), 2, "Explicit midpoint rule (Runge 1895)."),
    _tab("heun", {(2, 1): 1}, (F(1, 2), F(1, 2)), 2, "Heun's method / improved Euler (explicit trapezoid)."),
    _tab("ralston", {(2, 1): F(2, 3)}, (F(1, 4), F(3, 4)), 2,
         "Ralston's 2-stage second-order method (minimal error bound)."),
    _tab("rk3", {(2, 1): F(1, 2), (3, 1): -1, (3, 2): 2}, (F(1, 6), F(2, 3), F(1, 6)), 3,
         "Kutta's third-order method."),
    _tab("heun3", {(2, 1): F(1, 3), (3, 2): F(2, 3)}, (F(1, 4), 0, F(3, 4)), 3,
         "Heun's third-order method."),
    _tab("rk4", {(2, 1): F(1, 2), (3, 2): F(1, 2), (4, 3): 1}, (F(1, 6), F(1, 3), F(1, 3), F(1, 6)), 4,
         "The classic fourth-order Runge–Kutta method."),
    _tab("rk4_38", {(2, 1): F(1, 3), (3, 1): F(-1, 3), (3, 2): 1, (4, 1): 1, (4, 2): -1, (4, 3): 1},
         (F(1, 8), F(3, 8), F(3, 8), F(1, 8)), 4,
         "Kutta's 3/8 rule (torchdiffeq's fixed-grid 'rk4')."),
    _rk8(),
)
