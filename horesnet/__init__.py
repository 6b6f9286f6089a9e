"""horesnet: residual networks as discretised ODEs (Euler, Midpoint, RK4, Verner RK8 HO-ResNet blocks).

Every kind of named thing is a :class:`Registry` (docs/extending.md, "One registry type") and every ``register_*``
is importable from here: schemes, units, placements and architecture families at once; datasets and studies on
first use (their modules load Hydra's ConfigStore and the analysis code, which ``import horesnet`` does not).
"""

import importlib

from .errors import ConfigError
from .models import (
    build_model,
    compile_model,
    count_macs,
    count_params,
    list_blocks,
    load_torchvision_state_dict,
    plan_layout,
    to_torchvision_state_dict,
)
from .models.factory import get_family, list_families, register_family, unregister_family
from .nn import (
    get_placement,
    get_unit,
    list_placements,
    list_units,
    register_placement,
    register_unit,
    unregister_placement,
    unregister_unit,
)
from .registry import Registry, RegistryError, registries
from .schemes import Multistep, Tableau, get_scheme, list_schemes, register_scheme, unregister_scheme

__version__ = "0.1.0"

# Lazy (PEP 562): the dataset and study registries load on first use
_LAZY = {**dict.fromkeys(("register_dataset", "get_dataset", "list_datasets", "unregister_dataset"), "data.registry"),
         **dict.fromkeys(("register_study", "get_study", "list_studies", "unregister_study"), "analysis.registry")}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ConfigError", "Multistep", "Registry", "RegistryError", "Tableau", "__version__", "build_model", "compile_model",
    "count_macs", "count_params", "get_dataset", "get_family", "get_placement", "get_scheme", "get_study", "get_unit",
    "list_blocks", "list_datasets", "list_families", "list_placements", "list_schemes", "list_studies", "list_units",
    "load_torchvision_state_dict", "plan_layout", "register_dataset", "register_family", "register_placement",
    "register_scheme", "register_study", "register_unit", "registries", "to_torchvision_state_dict",
    "unregister_dataset", "unregister_family", "unregister_placement", "unregister_scheme", "unregister_study",
    "unregister_unit",
]
