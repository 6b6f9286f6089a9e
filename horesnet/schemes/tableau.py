"""The immutable Butcher tableau of an explicit Runge–Kutta method.

An s-stage explicit method is given by a strictly lower triangular s×s matrix A and weights b; its
nodes are c_i = Σ_j a_ij (J. C. Butcher, "Numerical Methods for Ordinary Differential Equations",
3rd ed., Wiley 2016, Sec. 23). The order is never declared: it is computed from the rooted-tree order
conditions (see :mod:`horesnet.schemes.order`) the first time it is asked for, then cached.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from numbers import Real
from typing import ClassVar

from .errors import SchemeError
from .order import RELATIVE_TOLERANCE, computed_order
from .stage import FLOAT32_EPS, check_units, inversion_error, safe_depth, summary


def _entry(value, where: str) -> float:
    """One coefficient as float64; ints, Fractions, numpy and mpmath reals are accepted."""
    if isinstance(value, (bool, str, bytes)):
        raise SchemeError(f"{where} must be a real number; got {value!r} of type {type(value).__name__}.")
    try:
        x = float(value)
    except (TypeError, ValueError) as exc:
        raise SchemeError(
            f"{where} must be a real number; got {value!r} of type {type(value).__name__}."
        ) from exc
    if not isinstance(value, Real):  # e.g. numpy complex, which float() silently truncates
        try:
            imag = complex(value).imag
        except (TypeError, ValueError):
            imag = 0.0
        if imag != 0:
            raise SchemeError(f"{where} must be real; got {value!r}.")
    if not math.isfinite(x):
        raise SchemeError(f"{where} must be finite; got {x!r}. Every entry of A and b must be a finite real.")
    return x


def _sequence(obj, what: str) -> list:
    if isinstance(obj, (str, bytes)) or not hasattr(obj, "__len__") or not hasattr(obj, "__iter__"):
        raise SchemeError(f"{what} must be a sequence (list, tuple or array); got {obj!r}.")
    return list(obj)


def _normalise(name, A, b) -> tuple[tuple[tuple[float, ...], ...], tuple[float, ...]]:
    """Validate A and b and return them as tuples of float64; raise SchemeError naming the problem."""
    label = f"scheme {name!r}"
    rows = _sequence(A, f"A of {label}")
    s = len(rows)
    if s == 0:
        raise SchemeError(f"A of {label} has zero stages; an explicit Runge–Kutta method needs s >= 1 "
                          "(A is s×s, e.g. A=[[0]], b=[1] for Euler).")
    rows = [_sequence(row, f"row {i + 1} of A of {label}") for i, row in enumerate(rows)]
    lengths = [len(row) for row in rows]
    if len(set(lengths)) > 1:
        raise SchemeError(
            f"A of {label} is ragged: its rows have lengths {lengths}; A must be a square s×s matrix "
            f"with s = {s} rows of {s} entries (write the zeros on and above the diagonal)."
        )
    if lengths[0] != s:
        raise SchemeError(
            f"A of {label} is not square: {s} rows of {lengths[0]} entries; A must be s×s "
            f"(here {s}×{s}), one row and one column per stage."
        )
    out_a = []
    for i, row in enumerate(rows):
        vals = tuple(_entry(v, f"A[{i + 1},{j + 1}] of {label}") for j, v in enumerate(row))
        for j in range(i, s):
            if vals[j] != 0.0:
                raise SchemeError(
                    f"A of {label} is not strictly lower triangular: A[{i + 1},{j + 1}] = {vals[j]!r} "
                    f"(1-based) must be 0. Only explicit methods are supported: a_ij may be non-zero "
                    f"only for j < i."
                )
        out_a.append(tuple(0.0 if v == 0.0 else v for v in vals))  # normalise -0.0
    weights = _sequence(b, f"b of {label}")
    if len(weights) != s:
        raise SchemeError(
            f"b of {label} has {len(weights)} entries but A has {s} stages; b needs exactly one "
            f"weight per stage ({s})."
        )
    out_b = tuple(_entry(v, f"b[{i + 1}] of {label}") for i, v in enumerate(weights))
    return tuple(out_a), tuple(0.0 if v == 0.0 else v for v in out_b)


@dataclass(frozen=True)
class Tableau:
    """An explicit Runge–Kutta method: strictly lower triangular ``A`` (s×s) and weights ``b``.

    Entries are stored as float64 tuples. ``c``, ``increments``, ``order`` and ``consistent`` are derived;
    ``order`` is computed from the Butcher order conditions (at most 9) and cached. ``promised_order``
    is what the name promises (set for built-ins) and is checked against ``order`` by the tests. ``warning``, when
    not empty, flags a tableau that should not be mistaken for a sound method (a compatibility scheme that
    reproduces published code): building a network of it issues that text as a ``UserWarning``.
    """

    kind: ClassVar[str] = "rk"
    steps: ClassVar[int] = 1  # a one-step method: each step uses only the newest state
    zero_stable: ClassVar[bool] = True  # ρ(ζ) = ζ − 1
    invertible: ClassVar[bool] = False  # a block cannot be solved for its input without solving for F's argument
    inversion_growth: ClassVar[float] = math.inf
    inversion_roots: ClassVar[None] = None

    name: str
    A: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    description: str = ""
    promised_order: int | None = None
    warning: str = ""
    c: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise SchemeError(f"a scheme name must be a non-empty string; got {self.name!r}.")
        if not isinstance(self.description, str):
            raise SchemeError(
                f"description of scheme {self.name!r} must be a string; got {self.description!r}."
            )
        if not isinstance(self.warning, str):
            raise SchemeError(f"warning of scheme {self.name!r} must be a string; got {self.warning!r}.")
        po = self.promised_order
        if po is not None and (isinstance(po, bool) or not isinstance(po, int) or po < 0):
            raise SchemeError(
                f"promised_order of scheme {self.name!r} must be None or a non-negative integer; got {po!r}."
            )
        A, b = _normalise(self.name, self.A, self.b)
        object.__setattr__(self, "A", A)
        object.__setattr__(self, "b", b)
        object.__setattr__(self, "c", tuple(math.fsum(row) for row in A))

    @property
    def increments(self) -> int:
        """Number of increments s per step (the RK "stages"; horesnet keeps "stage" for network stages)."""
        return len(self.b)

    @cached_property
    def order(self) -> int:
        """Computed order: largest p <= 9 with every rooted-tree condition of 1..p nodes satisfied."""
        return computed_order(self)

    @property
    def consistent(self) -> bool:
        """Whether Σ b_i = 1, the order-1 condition, with the order conditions' criterion: |Σ b_i − 1| <= 1e-10
        (:mod:`horesnet.schemes.order`). ``consistent`` is the same as ``order >= 1``."""
        return abs(math.fsum([*self.b, -1.0])) <= RELATIVE_TOLERANCE

    @property
    def units_per_step(self) -> int:
        """Units per block (the common name, :mod:`horesnet.schemes.stage`): the increments s."""
        return self.increments

    @property
    def effective_step(self) -> float:
        """σ(1)/ρ'(1) of the method viewed as a general linear method: Σ b_i (1 for every consistent tableau)."""
        return math.fsum(self.b)

    def inversion_error(self, units: int, eps: float = FLOAT32_EPS) -> float:
        """inf: a Runge–Kutta block is not algebraically invertible (see :mod:`horesnet.schemes.stage`)."""
        return inversion_error(None, units, eps)

    def safe_inversion_depth(self, tolerance: float, eps: float = FLOAT32_EPS) -> int:
        """0: a Runge–Kutta block is not algebraically invertible (see :mod:`horesnet.schemes.stage`)."""
        return safe_depth(None, tolerance, eps)

    def residual_weights(self, units: int, step: float = 1.0) -> tuple[float, ...]:
        """First-order weight of each unit's increment on the output of a stage of ``units`` units that form blocks
        of this scheme: h·b_i for increment i of each block (horesnet.models.scale); ``units`` must be a multiple
        of the increments."""
        check_units(units)
        if units % self.increments:
            raise SchemeError(f"a stage of {units} units is not a whole number of {self.name!r} blocks of "
                              f"{self.increments} units; the layout makes the rest Euler blocks (docs/design.md).")
        return tuple(step * w for w in self.b) * (units // self.increments)

    def summary(self, units: int = 8) -> dict:
        """The common properties as one dict (:func:`horesnet.schemes.stage.summary`)."""
        return summary(self, units)

    def nonzero_A(self) -> tuple[tuple[tuple[int, float], ...], ...]:
        """Per row i (0-based): the pairs (j, a_ij) with a_ij != 0, j ascending."""
        return tuple(tuple((j, a) for j, a in enumerate(row) if a != 0.0) for row in self.A)

    def nonzero_b(self) -> tuple[tuple[int, float], ...]:
        """The pairs (i, b_i) with b_i != 0 (0-based), i ascending."""
        return tuple((i, w) for i, w in enumerate(self.b) if w != 0.0)

    def __str__(self) -> str:
        promised = "" if self.promised_order is None else f", promised {self.promised_order}"
        flag = "" if self.consistent else ", INCONSISTENT (sum b != 1)"
        flag += ", FLAGGED (see its .warning)" if self.warning else ""
        return f"{self.name}: {self.increments} increments, order {self.order}{promised}{flag}"
