"""What every scheme, one-step (:class:`Tableau`) or multistep (:class:`Multistep`), reports the same way.

The common attributes (docs/multistep.md, "Common properties"):

    kind                    "rk" or "multistep"
    name, description, warning
    steps                   past states a step uses (1 for Runge–Kutta; None: all past states of a stage)
    units_per_step          units (F evaluations) per step: the RK increments s, 1 for a multistep method
    order, consistent       computed, never declared
    zero_stable             roots of ρ in the closed unit disk, simple on the circle (RK: ρ(ζ) = ζ − 1, always)
    effective_step          σ(1)/ρ'(1): Σb for a tableau (1 when consistent), 1/(1+k) for LM-ResNet
    invertible, inversion_growth (1/min|ζ|: reported), inversion_error(units, eps) and
    safe_inversion_depth(tolerance, eps) (the first-order model of :func:`inversion_error`: all roots of ρ)
    residual_weights(units, step=1)   first-order weight of each unit's F on a stage's output
    summary(units=8)        all of the above as one dict (one row of ``info list=schemes``)
"""

from __future__ import annotations

import math

from .errors import SchemeError

FLOAT32_EPS = 2.0**-24  # unit roundoff of float32, the default precision of a network's activations


def check_units(units) -> int:
    if isinstance(units, bool) or not isinstance(units, int) or units < 1:
        raise SchemeError(f"a stage needs a positive integer number of units; got {units!r}.")
    return units


MAX_SAFE_DEPTH = 2**20  # where safe_depth stops searching: a result of MAX_SAFE_DEPTH means "at least this many"


def _roots_or_none(roots) -> tuple[complex, ...] | None:
    """The roots as complex numbers, or None when one of them is 0 (the step cannot be solved for its oldest state)."""
    if roots is None:
        return None
    out = tuple(complex(z) for z in roots)
    if any(not math.isfinite(abs(z)) for z in out):
        raise SchemeError(f"the roots of rho must be finite; got {roots!r}.")
    return None if any(z == 0 for z in out) else out


def _accumulated(roots: tuple[complex, ...], units: int):
    """S_1..S_units, S_T = Σ_{m<T} |h_m| with h the impulse response of 1/Π_i (1 − z/ζ_i) (float64 array; inf once
    h overflows). h is filtered through one root at a time, h_m += h_{m−1}/ζ_i, in complex arithmetic."""
    import numpy as np
    from scipy.signal import lfilter  # imported here: only the inversion-safety questions need it

    h = np.zeros(units, dtype=complex)
    h[0] = 1.0
    with np.errstate(all="ignore"):
        for z in roots:
            h = lfilter([1.0], [1.0, -1.0 / z], h)
        size = np.abs(h)
        size[~np.isfinite(size)] = np.inf  # overflow: inf·0 in a complex product gives nan
        return np.cumsum(size)


def _positive(what: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise SchemeError(f"{what} must be a positive finite number; got {value!r}.")


def inversion_error(roots, units: int, eps: float = FLOAT32_EPS) -> float:
    """First-order bound on the relative error of a stage of ``units`` steps rebuilt by running them backwards.

    Running x_{n+1} = Σ_j α_j x_{n−j} + h Σ_j β_j F_{n−j} backwards, x_{n−k+1} = (x_{n+1} − ...)/α_{k−1}, an error
    e of the rebuilt states obeys the backward recurrence (F's terms left out: first order, linear part), whose
    characteristic roots are μ_i = 1/ζ_i for *every* root ζ_i of ρ -- the root ζ = 1 of a consistent method
    included: its mode neither grows nor decays, so errors accumulate. A rounding error of relative size ``eps`` is
    injected at each of the T inverted steps; the one made m steps before the end has been propagated by the
    impulse response h_m of 1/Π_i (1 − μ_i z) (h_0 = 1), so after T steps

        error(T) <= eps · Σ_{m=0}^{T−1} |h_m|

    (momentum, ρ = (ζ − 1)(ζ − γ), g = 1/γ: h_m = (g^{m+1} − 1)/(g − 1); leapfrog, roots ±1: h = 1, 0, 1, 0, ...,
    the sum ⌈T/2⌉). ``roots``: the roots of ρ of an invertible step, with multiplicity (zero roots that only come from
    trailing zero coefficients removed, see ``Multistep.inversion_roots``); None or a zero root: not invertible, inf.
    Measured against reversible momentum stages (docs/multistep.md, "Reversible training") it lies 1-4x above the
    rebuilt input's error where that error is small; it is only a linear model and far beyond any tolerance the
    units' Jacobians can make the error larger.
    """
    check_units(units)
    _positive("eps", eps)
    roots = _roots_or_none(roots)
    if roots is None:
        return math.inf
    return float(eps * _accumulated(roots, units)[-1])


def safe_depth(roots, tolerance: float, eps: float = FLOAT32_EPS) -> int:
    """The most steps (units) that can be inverted in a row with ``inversion_error(roots, T, eps) <= tolerance``.

    The error bound only grows with T (a sum of non-negative terms), so this is the number of partial sums
    eps·S_T within the tolerance. 0 when the step cannot be inverted (``roots`` None or with a zero root) or when
    even one step is beyond the tolerance (eps > tolerance). The search stops at ``MAX_SAFE_DEPTH`` = 2^20 steps: that
    value means "at least 2^20" (a bound that grows slower than tolerance/eps allows within 2^20 steps, e.g. leapfrog
    in float64 or an inconsistent method whose roots all lie outside the unit circle); no network has such a stage.
    """
    _positive("tolerance", tolerance)
    _positive("eps", eps)
    roots = _roots_or_none(roots)
    if roots is None or eps > tolerance:
        return 0
    import numpy as np

    n = 256
    while True:
        n = min(n, MAX_SAFE_DEPTH)
        within = int(np.count_nonzero(eps * _accumulated(roots, n) <= tolerance))
        if within < n or n == MAX_SAFE_DEPTH:
            return within
        n *= 4


def summary(scheme, units: int = 8) -> dict:
    """The common properties of a scheme, for one row of a table: residual weights for a stage of ``units`` (for a
    Runge–Kutta scheme whose blocks do not fill ``units``, for one block; ``units`` in the result says which)."""
    if units % scheme.units_per_step:  # Runge–Kutta: the mean over whole blocks, the same for any number of them
        units = scheme.units_per_step
    weights = scheme.residual_weights(units)
    mean = math.fsum(weights) / len(weights)
    return {
        "name": scheme.name, "kind": scheme.kind, "steps": scheme.steps, "units_per_step": scheme.units_per_step,
        "order": scheme.order, "consistent": scheme.consistent, "zero_stable": scheme.zero_stable,
        "effective_step": scheme.effective_step, "invertible": scheme.invertible,
        "inversion_growth": scheme.inversion_growth, "units": units, "residual_weight_mean": mean,
        "flagged": bool(scheme.warning), "description": scheme.description,
    }
