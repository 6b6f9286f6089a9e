"""Networks: the equal-depth layout, the ResNet container and ``build_model``."""

from .complexity import count_macs, count_params
from .factory import build_model
from .layout import ARCHS, ENTRIES, BlockSpec, Layout, StageLayout, list_blocks, plan_layout
from .resnet import ResNet, UnitInfo

__all__ = [
    "ARCHS", "ENTRIES", "BlockSpec", "Layout", "ResNet", "StageLayout", "UnitInfo", "build_model",
    "count_macs", "count_params", "list_blocks", "plan_layout",
]
