"""What every scheme, one-step (:class:`Tableau`) or multistep (:class:`Multistep`), reports the same way.

The common attributes (docs/multistep.md, "Common properties"):

    kind                    "rk" or "multistep"
    name, description, warning
    steps                   past states a step uses (1 for Runge–Kutta; None: all past states of a stage)
    units_per_step          units (F evaluations) per step: the RK increments s, 1 for a multistep method
    order, consistent       computed, never declared
    zero_stable             roots of ρ in the closed unit disk, simple on the circle (RK: ρ(ζ) = ζ − 1, always)
    effective_step          σ(1)/ρ'(1): Σb for a tableau (1 when consistent), 1/(1+k) for LM-ResNet
    invertible, inversion_growth, safe_inversion_depth(tolerance, eps)
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


def safe_depth(growth: float, tolerance: float, eps: float = FLOAT32_EPS) -> float:
    """The most units that can be inverted in a row while the reconstruction error stays below ``tolerance``.

    Model: each inverted unit adds a rounding error eps, which the following inverted units multiply by ``growth``,
    so after d units the error is about eps·growth^d (growth > 1), or eps·d (growth = 1: errors neither grow nor
    decay, they only accumulate). Returns 0 when the scheme cannot be inverted (growth = inf) and ``math.inf`` only
    if growth < 1, which a consistent method (ρ(1) = 0) cannot have.
    """
    for what, value in (("tolerance", tolerance), ("eps", eps)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
            raise SchemeError(f"{what} must be a positive finite number; got {value!r}.")
    if math.isinf(growth):
        return 0
    if tolerance < eps:
        return 0
    if growth < 1:
        return math.inf
    if growth <= 1 + 1e-12:
        return math.floor(tolerance / eps)
    return math.floor(math.log(tolerance / eps) / math.log(growth))


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
