"""Schemes as data: explicit Runge–Kutta tableaux and explicit linear multistep methods, their computed properties,
and one registry.

Pure math (no torch). The order of a tableau is computed from Butcher's rooted-tree order conditions
(J. C. Butcher, "Numerical Methods for Ordinary Differential Equations", Wiley 2016), never declared; a multistep
method's order, consistency and zero stability from its characteristic polynomials (Hairer, Nørsett, Wanner I,
Sec. III.2-III.4; docs/multistep.md). Both kinds report the common properties of :mod:`horesnet.schemes.stage`.
"""

from .errors import SchemeError
from .learnable import Learnable
from .multistep import Multistep, MultistepCondition
from .order import OrderCondition, format_tree, rooted_trees, tree_density, tree_order
from .registry import (
    Scheme,
    get_scheme,
    list_schemes,
    order_conditions,
    register_scheme,
    unregister_scheme,
    warn_flagged,
)
from .tableau import Tableau

__all__ = [
    "Learnable",
    "Multistep",
    "MultistepCondition",
    "OrderCondition",
    "Scheme",
    "SchemeError",
    "Tableau",
    "format_tree",
    "get_scheme",
    "list_schemes",
    "order_conditions",
    "register_scheme",
    "rooted_trees",
    "tree_density",
    "tree_order",
    "unregister_scheme",
    "warn_flagged",
]
