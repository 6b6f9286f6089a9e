"""Explicit Runge–Kutta schemes as data: Butcher tableaux, computed order, and a registry.

Pure math (no torch). The order of a tableau is computed from Butcher's rooted-tree order conditions
(J. C. Butcher, "Numerical Methods for Ordinary Differential Equations", Wiley 2016), never declared.
"""

from .errors import SchemeError
from .order import OrderCondition, format_tree, rooted_trees, tree_density, tree_order
from .registry import (
    get_scheme,
    list_schemes,
    order_conditions,
    register_scheme,
    unregister_scheme,
    warn_flagged,
)
from .tableau import Tableau

__all__ = [
    "OrderCondition",
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
