"""Building blocks: units F and their registry, placements, shortcuts S, the one scheme block with its hook
interface, and the continuous ODE block."""

from . import transformer as _transformer  # noqa: F401 -- registers the attn, mlp and layer units
from .block import NestedUnit, SchemeBlock
from .drop_path import DropPath
from .hooks import BlockHook, SwitchOff, hooked
from .norms import NORMS, make_norm
from .ode import ODE_METHODS, ODEBlock
from .placements import Placement, get_placement, list_placements, register_placement, unregister_placement
from .shortcuts import SHORTCUTS, make_shortcut, normalise_shortcut
from .units import (
    UNITS,
    ConvUnit,
    UnitOptions,
    UnitType,
    get_unit,
    list_units,
    make_unit,
    register_unit,
    unregister_unit,
)

UNITS.lock_builtins()  # basic, bottleneck, attn, mlp, layer: horesnet's own, never replaced, never removed

__all__ = [
    "BlockHook", "ConvUnit", "DropPath", "NORMS", "NestedUnit", "ODEBlock", "ODE_METHODS", "Placement", "SHORTCUTS",
    "SchemeBlock", "SwitchOff", "UnitOptions", "UnitType", "get_placement", "get_unit", "hooked", "list_placements",
    "list_units", "make_norm", "make_shortcut", "make_unit", "normalise_shortcut", "register_placement",
    "register_unit", "unregister_placement", "unregister_unit",
]
