"""Explicit linear multistep schemes as data (docs/multistep.md).

    x_{n+1} = Σ_{j=0}^{k−1} α_j x_{n−j} + h Σ_{j=0}^{k−1} β_j F(x_{n−j})

In a network each F(x_{n−j}) is the output of the unit that took step n−j (stored, never re-evaluated), so a
step costs one unit. Properties are computed from the coefficients, never declared (E. Hairer, S. P. Nørsett,
G. Wanner, "Solving Ordinary Differential Equations I", 2nd ed., Springer 1993, Sec. III.2–III.4):

- effective step h_eff = σ(1)/ρ'(1): the method is a consistent discretisation of x' = F with step h·h_eff when
  ρ(1) = 0 (Σα = 1), σ(1) != 0 and ρ'(1) != 0 (LM-ResNet: 1/(1+k); every other built-in: 1). ``consistent`` and
  ``order`` are those of (α, β/h_eff), i.e. at the effective step; with h_eff = 1 they are the classical ones.
- order p: the method is exact for x(t) = t^q, q = 0..p, with x_{n−j} at t = −j and x_{n+1} at t = 1:
  V_q = Σ_j α_j (−j)^q + q Σ_j β̂_j (−j)^{q−1} = 1 (β̂ = β/h_eff). V_q is evaluated exactly on the float64
  coefficients and holds when |V_q − 1| <= 1e-10, the criterion of the Runge–Kutta order conditions
  (:mod:`horesnet.schemes.order`): rounding a coefficient moves V_q by at most u·Σ(|α_j| j^q + q|β̂_j| j^{q−1}),
  at most 1e-14 for every built-in. An explicit k-step method has order at most 2k−1 (its 2k coefficients), the cap
  used.
- zero stability and the inversion growth factor: :mod:`horesnet.schemes.roots`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import cached_property
from typing import ClassVar, NamedTuple

import numpy as np

from . import roots as _roots
from .errors import SchemeError
from .learnable import Learnable
from .order import RELATIVE_TOLERANCE
from .stage import FLOAT32_EPS, check_units, inversion_error, safe_depth, summary
from .tableau import _entry, _sequence

HISTORIES = ("fixed", "stage")
STARTERS = ("repeat", "euler")


class MultistepCondition(NamedTuple):
    """One multistep order condition V_q = 1 (exactness for x(t) = t^q), at the effective step."""

    q: int
    value: float
    residual: float  # V_q − 1, relative to the value V_q must take (1)
    satisfied: bool  # |residual| <= 1e-10


@dataclass(frozen=True)
class Multistep:
    """An explicit linear multistep method: α_j, β_j (j = 0 the newest state x_n) as float64 tuples of equal length k.

    ``history``: ``"fixed"`` uses the k newest states; ``"stage"`` uses every past state of the stage
    (x_0..x_n at step n), α and β giving the newest entries and older ones 0 (the learned averaging scheme).
    ``starter``: how a stage's first steps, which lack history, are taken (``stage_coefficients``): ``"repeat"``
    takes the missing states equal to the stage's first state x_0 (allowed only when β_j = 0 for j >= 1); ``"euler"``
    takes the first k−1 steps as Euler steps x_{n+1} = x_n + h·h_eff·F(x_n). Default: repeat when β_j = 0 for
    j >= 1, else euler. ``learnable``: :class:`Learnable` families; ``warning`` flags an unsound scheme.
    """

    kind: ClassVar[str] = "multistep"
    units_per_step: ClassVar[int] = 1

    name: str
    alpha: tuple[float, ...]
    beta: tuple[float, ...]
    description: str = ""
    warning: str = ""
    history: str = "fixed"
    starter: str | None = None
    learnable: tuple[Learnable, ...] = ()
    promised_order: int | None = None

    def __post_init__(self) -> None:
        label = f"scheme {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise SchemeError(f"a scheme name must be a non-empty string; got {self.name!r}.")
        for attr in ("description", "warning"):
            if not isinstance(getattr(self, attr), str):
                raise SchemeError(f"{attr} of {label} must be a string; got {getattr(self, attr)!r}.")
        a, b = (tuple(_entry(v, f"{attr}[{j}] of {label}") + 0.0
                      for j, v in enumerate(_sequence(getattr(self, attr), f"{attr} of {label}")))
                for attr in ("alpha", "beta"))
        if not a or len(a) != len(b):
            raise SchemeError(
                f"alpha and beta of {label} must have the same non-zero length k, one coefficient per past state "
                f"x_n, x_(n-1), ..., x_(n-k+1) (pad with zeros); got {len(a)} and {len(b)}.")
        object.__setattr__(self, "alpha", a)
        object.__setattr__(self, "beta", b)
        if self.history not in HISTORIES:
            raise SchemeError(f"history of {label} must be one of {', '.join(HISTORIES)}; got {self.history!r}.")
        starter = self.starter if self.starter is not None else ("euler" if any(b[1:]) else "repeat")
        if starter not in STARTERS:
            raise SchemeError(f"starter of {label} must be one of {', '.join(STARTERS)}; got {starter!r}.")
        if starter == "repeat" and any(b[1:]):
            raise SchemeError(f"starter 'repeat' of {label} takes missing states equal to x_0 but cannot supply "
                              f"F of them: it needs beta[j] = 0 for j >= 1; use starter='euler'.")
        object.__setattr__(self, "starter", starter)
        self._check_learnable(label)
        po = self.promised_order
        if po is not None and (isinstance(po, bool) or not isinstance(po, int) or po < 0):
            raise SchemeError(f"promised_order of {label} must be None or a non-negative integer; got {po!r}.")

    def _check_learnable(self, label: str) -> None:
        learnable = tuple(self.learnable)
        object.__setattr__(self, "learnable", learnable)
        if not all(isinstance(p, Learnable) for p in learnable):
            raise SchemeError(f"learnable of {label} must be a tuple of Learnable; got {learnable!r}.")
        if len(learnable) > 1:
            raise SchemeError(f"{label} may have at most one learnable family; got {[p.name for p in learnable]}.")
        for p in learnable:
            if p.kind == "affine" and p.coefficients(p.init) != (self.alpha, self.beta):
                raise SchemeError(f"{label}: alpha and beta must be its learnable family {p.name!r} at its init "
                                  f"{p.init!r}, {p.coefficients(p.init)}; got {(self.alpha, self.beta)}.")
            if p.kind == "history" and self.history != "stage":
                raise SchemeError(f"{label}: a 'history' learnable needs history='stage'.")

    # ------------------------------------------------------------------ exact characteristic values
    @property
    def k(self) -> int:
        """Number of stored coefficients (states used by a full step; "stage" history pads with zeros)."""
        return len(self.alpha)

    @property
    def steps(self) -> int | None:
        """States a step uses: k, or None for "all past states of a stage"."""
        return self.k if self.history == "fixed" else None

    @cached_property
    def _exact(self) -> tuple[list[Fraction], list[Fraction]]:
        return [Fraction(a) for a in self.alpha], [Fraction(b) for b in self.beta]

    @cached_property
    def preconsistent(self) -> bool:
        """ρ(1) = 0, i.e. Σα = 1 (the condition V_0 = 1)."""
        return abs(sum(self._exact[0]) - 1) <= RELATIVE_TOLERANCE

    @cached_property
    def _h_eff(self) -> Fraction | None:
        """σ(1)/ρ'(1) exactly, ρ'(1) as 1 + Σ j α_j: the derivative of ρ where Σα = 1 (it differs from that of the
        stored ρ by (k−1)(Σα − 1), rounding level), which does not change when zeros pad the history. None when
        either is "zero" relative to the size of its terms."""
        a, b = self._exact
        rho1, sigma1 = 1 + sum(j * aj for j, aj in enumerate(a)), sum(b)
        if (not self.preconsistent or abs(sigma1) <= RELATIVE_TOLERANCE * max(1, sum(map(abs, b)))
                or abs(rho1) <= RELATIVE_TOLERANCE * (1 + sum(j * abs(aj) for j, aj in enumerate(a)))):
            return None
        return sigma1 / rho1

    @property
    def effective_step(self) -> float:
        """σ(1)/ρ'(1) (NaN when the method is not consistent at any step)."""
        return math.nan if self._h_eff is None else float(self._h_eff)

    @property
    def consistent(self) -> bool:
        """ρ(1) = 0 and σ(1), ρ'(1) != 0: a consistent method for x' = F at the step h·h_eff."""
        return self._h_eff is not None

    # ------------------------------------------------------------------ order
    @property
    def max_order(self) -> int:
        """2k−1 for the k of the coefficients without trailing zero pairs: the most an explicit k-step method has."""
        k = max((j + 1 for j, (a, b) in enumerate(zip(self.alpha, self.beta, strict=True)) if a or b), default=1)
        return 2 * k - 1

    def conditions(self, max_q: int | None = None) -> list[MultistepCondition]:
        """V_q for q = 0..``max_q`` (default: max_order + 1), at the effective step when consistent."""
        a, b = self._exact
        if self._h_eff is not None:
            b = [bj / self._h_eff for bj in b]
        out = []
        for q in range(self.max_order + 2 if max_q is None else max_q + 1):
            v = sum(aj * Fraction(-j) ** q for j, aj in enumerate(a))
            if q:
                v += q * sum(bj * Fraction(-j) ** (q - 1) for j, bj in enumerate(b))
            out.append(MultistepCondition(q, float(v), float(v - 1), abs(v - 1) <= RELATIVE_TOLERANCE))
        return out

    @cached_property
    def order(self) -> int:
        """Largest p <= 2k−1 with V_0..V_p = 1 at the effective step; 0 when not consistent."""
        if not self.consistent:
            return 0
        failed = (cond.q for cond in self.conditions(self.max_order) if not cond.satisfied)
        return next(failed, self.max_order + 1) - 1

    # ------------------------------------------------------------------ roots
    @cached_property
    def _root_analysis(self) -> _roots.RootAnalysis:
        return _roots.analyse(self.alpha, root_one=self.preconsistent)

    @property
    def roots(self) -> tuple[complex, ...]:
        """Roots of ρ with multiplicity (:mod:`horesnet.schemes.roots`)."""
        return self._root_analysis.roots

    @property
    def zero_stable(self) -> bool:
        """Roots of ρ in the closed unit disk, those on the unit circle simple (tolerance 1e-6, see roots)."""
        return self._root_analysis.zero_stable

    @property
    def zero_stability_reason(self) -> str:
        return self._root_analysis.reason

    # ------------------------------------------------------------------ inversion
    @property
    def invertible(self) -> bool:
        """A step can be solved for its oldest state: k >= 2, α_{k−1} != 0 and β_{k−1} = 0 (no F of that state)."""
        k = (self.max_order + 1) // 2  # k without trailing zero pairs
        return self.history == "fixed" and k >= 2 and self.alpha[k - 1] != 0 and self.beta[k - 1] == 0

    @property
    def inversion_growth(self) -> float:
        """Per-unit growth of the fastest mode of an error when the steps are run backwards, 1/min|ζ_i| (inf when
        not invertible): the reported growth factor. The safety check uses ``inversion_error`` (every root)."""
        return self._root_analysis.growth if self.invertible else math.inf

    @property
    def inversion_roots(self) -> tuple[complex, ...] | None:
        """The roots of ρ that govern running the steps backwards: all of them but the zero roots of trailing zero
        coefficients (which ``invertible`` strips too); None when not invertible."""
        return tuple(z for z in self.roots if z != 0) if self.invertible else None

    def inversion_error(self, units: int, eps: float = FLOAT32_EPS) -> float:
        """First-order relative error of a stage of ``units`` steps rebuilt backwards, eps·Σ_{m<T} |h_m| (see
        stage.inversion_error; inf when not invertible)."""
        return inversion_error(self.inversion_roots, units, eps)

    def safe_inversion_depth(self, tolerance: float, eps: float = FLOAT32_EPS) -> int:
        """Most units that can be inverted in a row with ``inversion_error <= tolerance`` (see stage.safe_depth;
        0 when not invertible)."""
        return safe_depth(self.inversion_roots, tolerance, eps)

    # ------------------------------------------------------------------ a stage
    def stage_coefficients(self, units: int) -> tuple[tuple[tuple[float, ...], tuple[float, ...]], ...]:
        """(α, β) of each of a stage's ``units`` steps, from its first state x_0: step n uses x_n..x_0 only.

        Full steps use (α, β) ("stage" history: padded with zeros to all n+1 past states). The first k−1 steps lack
        history: the "euler" starter makes them x_{n+1} = x_n + h·h_eff·F_n (h_eff taken as 1 when it is 1 to
        within 1e-10); "repeat" takes x_{−i} = x_0, folding
        α_n..α_{k−1} into the coefficient of x_0 (as 1 − Σ_{j<n} α_j when Σα = 1, so that it stays exactly 1).
        """
        check_units(units)
        h = self._h_eff  # the Euler starter's step: exactly 1 when h_eff is 1 within the tolerance (or undefined)
        h = 1.0 if h is None or abs(h - 1) <= RELATIVE_TOLERANCE else float(h)
        out = []
        for n in range(units):
            a, b = list(self.alpha), list(self.beta)
            if self.history == "stage" and n + 1 > self.k:
                a += [0.0] * (n + 1 - self.k)
                b += [0.0] * (n + 1 - self.k)
            if len(a) > n + 1:
                if self.starter == "euler":
                    a, b = [1.0], [h]
                else:
                    folded = 1 - math.fsum(a[:n]) if self.preconsistent else math.fsum(a[n:])
                    a, b = [*a[:n], folded], b[:n + 1]
            out.append((tuple(a), tuple(b)))
        return tuple(out)

    def residual_weights(self, units: int, step: float = 1.0) -> tuple[float, ...]:
        """First-order weight of each unit's F on the stage output x_T (T = ``units``): ∂x_T/∂F_s, s = 1..T, unit s
        being the one that computes F(x_{s−1}). Exact for the linear recurrence (F values as inputs)."""
        coeffs = self.stage_coefficients(units)
        w = np.zeros((units + 1, units))  # w[m, s-1]: weight of unit s's F in x_m
        for n, (a, b) in enumerate(coeffs):
            for j, aj in enumerate(a):
                if aj:
                    w[n + 1] += aj * w[n - j]
            for j, bj in enumerate(b):
                w[n + 1, n - j] += step * bj
        return tuple(float(x) for x in w[units])

    def summary(self, units: int = 8) -> dict:
        return summary(self, units)

    # ------------------------------------------------------------------ variants
    def at(self, **values: float) -> Multistep:
        """This scheme with its affine learnable set to a value, e.g. ``get_scheme("lm").at(k=-0.1)``."""
        name, value = next(iter(values.items())) if len(values) == 1 else (None, None)
        fam = next((p for p in self.learnable if p.name == name and p.kind == "affine"), None)
        if fam is None:
            raise SchemeError(f"scheme {self.name!r}: give one value of its affine learnable "
                              f"({[p.name for p in self.learnable if p.kind == 'affine']}); got {values!r}.")
        alpha, beta = fam.coefficients(value)
        return replace(self, alpha=alpha, beta=beta, learnable=(fam.at(value),))

    def __str__(self) -> str:
        flag = "" if self.consistent else ", INCONSISTENT"
        flag += "" if self.zero_stable else ", NOT ZERO-STABLE"
        flag += ", FLAGGED (see its .warning)" if self.warning else ""
        steps = "all past states of a stage" if self.steps is None else f"{self.k} steps"
        return f"{self.name}: multistep, {steps}, order {self.order}, effective step {self.effective_step:.6g}{flag}"
