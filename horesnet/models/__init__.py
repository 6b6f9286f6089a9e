"""Networks: the equal-depth layout, the ResNet container and ``build_model``."""

from .compile import COMPILE_MODES, compile_model
from .complexity import count_macs, count_params
from .config import MODEL_KEYS, ModelConfig, model_defaults
from .factory import build_model
from .layout import ARCHS, ENTRIES, BlockSpec, Layout, StageLayout, list_blocks, plan_layout
from .resnet import ResNet, UnitInfo
from .timm_models import register_timm_models
from .torchvision import load_torchvision_state_dict, to_torchvision_state_dict
from .transformer import build_transformer  # noqa: F401 -- registers the transformer family (layout and builder)

__all__ = [
    "ARCHS", "ENTRIES", "MODEL_KEYS", "BlockSpec", "Layout", "ModelConfig", "ResNet", "StageLayout", "UnitInfo",
    "COMPILE_MODES", "build_model", "compile_model", "model_defaults",
    "count_macs", "count_params", "list_blocks", "load_torchvision_state_dict", "plan_layout", "register_timm_models",
    "to_torchvision_state_dict",
]
