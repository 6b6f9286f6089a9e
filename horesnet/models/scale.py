"""Residual scale: how strongly each unit's increment enters the network (docs/design.md, "Residual scale").

A unit's residual weight is the weight with which its increment k_i enters its block's output to first order,
h·b_i (an Euler unit: h; a unit nested in an inner scheme: the product over the nesting). A network's residual
scale is the mean over its units, also reported per stage. Examples at depth 56: Euler 1.0; RK4 (3·1 + 24·0.25)/27
= 0.333; midpoint 0.556; Euler with ``step=0.25`` 0.25. Two variants whose scales differ compare different
amounts of residual signal as well as different schemes.

A unit of a multistep stage gets ∂x_T/∂F_s, the first-order weight of its output on the stage's output through
the carried history, at the stage's current coefficients (``Multistep.residual_weights``; docs/multistep.md):
momentum with γ = 0.9 gives its 8 units after the entry block 1 − 0.9^(9−s), mean 0.359, so the network at depth 56
has the residual scale (3·1 + 24·0.359)/27 = 0.430 -- scale-confounded against Euler, whose matched control is
Euler with step 0.43.
"""

from __future__ import annotations

from ..nn import NestedUnit, ODEBlock, SchemeBlock
from ..nn.multistep import MultistepBlock


def _step(block: SchemeBlock) -> float:
    return float(block.step.detach()) if block.learn_step else float(block.step)


def _weights(block: SchemeBlock, outer: float) -> list[float]:
    out = []
    for i in range(block.scheme.increments):
        w = outer * _step(block) * block.scheme.b[i]
        unit = block.unit(i)
        out += _weights(unit.block, w) if isinstance(unit, NestedUnit) else [w]
    return out


def residual_weights(model) -> list[tuple[str, float]]:
    """``(block address, weight)`` for every unit in forward order; None for a network with ODE blocks."""
    weights = []
    for address, block, _ in model.blocks():
        if isinstance(block, ODEBlock):
            return None
        if isinstance(block, MultistepBlock):
            weights += [(address, w) for w in block.coefficients.residual_weights()]
            continue
        weights += [(address, w) for w in _weights(block, 1.0)]
    return weights


def residual_scale(model) -> dict | None:
    """``{"mean": ..., "per_stage": [...]}`` of the units' residual weights (None with ODE blocks, which have no
    discrete units to weigh)."""
    weights = residual_weights(model)
    if weights is None:
        return None
    stages: dict[str, list[float]] = {}
    for address, w in weights:
        stages.setdefault(address.split(".")[0], []).append(w)
    mean = lambda ws: sum(ws) / len(ws)  # noqa: E731
    return {"mean": mean([w for _, w in weights]), "per_stage": [mean(ws) for ws in stages.values()]}


def control_step(scale: float) -> float:
    """The step of the matched Euler control of a variant with residual scale ``scale`` (4 decimals)."""
    return round(scale, 4)
