"""Building blocks: units F, shortcuts S, the one scheme block, and the continuous ODE block."""

from .block import NestedUnit, SchemeBlock
from .ode import ODE_METHODS, ODEBlock
from .shortcuts import SHORTCUTS, make_shortcut, normalise_shortcut
from .units import CONVS_PER_UNIT, EXPANSION, NORMS, PLACEMENTS, UNITS, Unit, make_norm, post_activation

__all__ = [
    "CONVS_PER_UNIT", "EXPANSION", "NORMS", "NestedUnit", "ODEBlock", "ODE_METHODS", "PLACEMENTS",
    "SHORTCUTS", "SchemeBlock", "UNITS", "Unit", "make_norm", "make_shortcut", "normalise_shortcut",
    "post_activation",
]
