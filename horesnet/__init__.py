"""horesnet: residual networks as discretised ODEs (Euler, Midpoint, RK4, Verner RK8 HO-ResNet blocks)."""

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
from .schemes import Multistep, Tableau, get_scheme, list_schemes, register_scheme

__version__ = "0.1.0"

__all__ = [
    "ConfigError", "Multistep", "Tableau", "__version__", "build_model", "compile_model", "count_macs", "count_params",
    "get_scheme", "list_blocks", "list_schemes", "load_torchvision_state_dict", "plan_layout", "register_scheme",
    "to_torchvision_state_dict",
]
