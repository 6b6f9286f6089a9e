"""horesnet networks as timm models, opt in: ``register_timm_models()`` (docs/model_api.md, "timm models").

After it, ``timm.create_model("horesnet_rk4_resnet56", ...)`` builds ``build_model(block="rk4", depth=56)`` through
timm's own builder (``build_model_with_cfg``), so every timm option works as for timm's models: ``num_classes``,
``in_chans``, ``global_pool``, ``drop_path_rate``, ``features_only`` with ``out_indices`` and any ``feature_cls``
(list, dict, hook, fx, getter), ``pretrained_cfg_overlay``; other keywords are horesnet's model options
(``width=0.5``, ``zero_init_last=True``, ...). Names are ``horesnet_<scheme>_resnet<depth>`` for every registered
scheme at the standard depths whose layout holds a block of the scheme: CIFAR 20/32/44/56/110 (10 classes, 32x32)
and ImageNet 18/34/50/101/152 (1000 classes, 224x224). Importing horesnet never imports timm; this module imports
it only when called.

No weights are hosted: ``pretrained=True`` needs a weight source, e.g. torchvision's ResNet weights for an ImageNet
network, ``pretrained_cfg_overlay=dict(file="resnet50.pth")`` (torchvision's names are mapped as
``load_torchvision_state_dict`` maps them, docs/torchvision_weights.md).
"""

from __future__ import annotations

from ..errors import ConfigError
from ..schemes import list_schemes
from .contract import family_cfg
from .factory import build_model
from .layout import plan_layout
from .torchvision import load_torchvision_state_dict

__all__ = ["default_cfgs", "register_timm_models", "timm_model_names"]

CIFAR_DEPTHS = (20, 32, 44, 56, 110)
IMAGENET_DEPTHS = (18, 34, 50, 101, 152)
CLASSES = {"cifar": 10, "imagenet": 1000}
TAPS = {"cifar": 4, "imagenet": 5}  # the stem and every stage
SOURCES = ("url", "file", "state_dict", "hf_hub_id")  # where timm's load_pretrained reads weights from
# timm's register_model reads the pretrained configs of this module's models here (filled at registration)
default_cfgs: dict = {}


def timm_model_names(schemes=None) -> dict[str, dict]:
    """``{timm name: build_model options}`` for ``schemes`` (None: every registered scheme) at the standard CIFAR
    and ImageNet depths, leaving out the pairs whose layout holds no block of the scheme (e.g. rk4 at depth 20)."""
    names = {}
    for scheme in list_schemes() if schemes is None else schemes:
        for arch, depths in (("cifar", CIFAR_DEPTHS), ("imagenet", IMAGENET_DEPTHS)):
            for depth in depths:
                try:
                    plan_layout(arch, depth, scheme)
                except ConfigError:
                    continue
                names[f"horesnet_{scheme}_resnet{depth}"] = dict(block=scheme, arch=arch, depth=depth)
    return names


def register_timm_models(schemes=None) -> list[str]:
    """Put the networks of :func:`timm_model_names` into timm's registry (``timm.list_models("horesnet*")``);
    names already there are kept. Returns the names. Call it again after ``register_scheme`` to add a new scheme.
    """
    try:
        from timm.models import generate_default_cfgs, is_model, register_model
    except ImportError as err:
        raise ConfigError("register_timm_models needs timm: pip install timm, or horesnet's interop environment "
                          "(bash scripts/setup_interop, docs/install.md).") from err
    names = timm_model_names(schemes)
    new = {name: options for name, options in names.items() if not is_model(name)}
    default_cfgs.update(generate_default_cfgs({name: _cfg(name, **options) for name, options in new.items()}))
    for name, options in new.items():
        globals()[name] = register_model(_entrypoint(name, options))
    return sorted(names)


def _cfg(name: str, block: str, arch: str, depth: int) -> dict:
    return dict(family_cfg(arch), num_classes=CLASSES[arch], license="mit",
                description=f"horesnet {block} {arch} ResNet-{depth}: each block one {block} step (untrained; "
                            "HO-ResNet, Luo et al. 2021, arXiv 2103.15244)")


def _entrypoint(name: str, options: dict):
    def entrypoint(pretrained: bool = False, **kwargs):
        return _create(name, options, pretrained, **kwargs)

    entrypoint.__name__ = entrypoint.__qualname__ = name  # timm registers a model under its function's name
    entrypoint.__module__ = __name__
    entrypoint.__doc__ = f"``build_model({', '.join(f'{k}={v!r}' for k, v in options.items())})`` as a timm model."
    return entrypoint


def _create(name: str, options: dict, pretrained: bool, **kwargs):
    from timm.models import build_model_with_cfg

    if pretrained and not _has_source(kwargs.get("pretrained_cfg"), kwargs.get("pretrained_cfg_overlay")):
        hint = (" For ImageNet networks, give torchvision ResNet weights: pretrained_cfg_overlay=dict(file="
                "'resnet50.pth') (bottleneck depths also need stride_in_3x3=True, torchvision's V1.5)."
                if options["arch"] == "imagenet" else "")
        raise ConfigError(f"{name}: horesnet hosts no pretrained weights (pretrained=True needs a weights source)."
                          f"{hint} Or build with pretrained=False.")
    kwargs.setdefault("feature_cfg", dict(flatten_sequential=True, out_indices=tuple(range(TAPS[options["arch"]]))))
    return build_model_with_cfg(_build, name, pretrained, pretrained_filter_fn=_torchvision_names_to_ours,
                                **options, **kwargs)


def _has_source(cfg, overlay) -> bool:
    cfgs = [c if isinstance(c, dict) else getattr(c, "__dict__", {}) for c in (cfg, overlay) if c]
    return any(c.get(key) for c in cfgs for key in SOURCES)


def _build(*, in_chans: int = 3, num_classes: int = 10, global_pool: str = "avg", drop_rate: float = 0.0,
           device=None, dtype=None, **options):
    """``build_model`` under timm's keyword names (``in_chans``; ``drop_rate``, timm's classifier dropout, only
    at 0: horesnet's head has none, ``drop_path_rate`` is stochastic depth)."""
    if drop_rate:
        raise ConfigError(f"drop_rate={drop_rate} (dropout before the classifier) is not a horesnet option; "
                          "horesnet regularises with drop_path_rate (stochastic depth) instead.")
    model = build_model(in_channels=in_chans, num_classes=num_classes, global_pool=global_pool, **options)
    return model.to(device=device, dtype=dtype) if device is not None or dtype is not None else model


def _torchvision_names_to_ours(state_dict: dict, model) -> dict:
    """timm's ``pretrained_filter_fn``: a torchvision ResNet state dict is loaded with horesnet's mapping (which
    checks depth, variant and every shape) and comes back under horesnet's names; others pass unchanged."""
    if "conv1.weight" not in state_dict:
        return state_dict
    fc = state_dict.get("fc.weight")
    head = fc is not None and getattr(model.fc, "out_features", None) == fc.shape[0]
    load_torchvision_state_dict(model, state_dict, head=head)
    return {k: v for k, v in model.state_dict().items() if head or not k.startswith("fc.")}
