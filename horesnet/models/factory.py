"""``build_model``: the one private factory behind every network variant (cf. torchvision's ``_resnet``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ..errors import ConfigError
from ..nn import (
    DropPath,
    NestedUnit,
    ODEBlock,
    SchemeBlock,
    UnitOptions,
    get_placement,
    get_unit,
    make_shortcut,
    normalise_shortcut,
)
from ..registry import Registry
from ..schemes import get_scheme, warn_flagged
from . import multistep
from .budget import check_fits, estimate
from .config import ModelConfig
from .contract import check_head
from .layout import FAMILY_PLANNERS, BlockSpec, plan_layout
from .resnet import ResNet, Stage, Stem

CIFAR_WIDTHS = (16, 32, 64)
IMAGENET_WIDTHS = (64, 128, 256, 512)


def build_model(config: ModelConfig | dict | None = None, /, *, global_pool: str = "avg", **options) -> ResNet:
    """Build a CIFAR (He et al. 2015, Sec. 4.2) or ImageNet (Table 1) residual network of any scheme.

    ``config`` (a :class:`ModelConfig` or a dict of its options) and keyword ``options`` (e.g. ``block="rk4",
    depth=56``) override :class:`ModelConfig`'s defaults; an unknown option is a ConfigError naming the valid ones.
    ``depth`` fixes the units per stage (equal-depth rule); ``block`` names a registered scheme or ``ode``.
    The head, as timm's constructors take it: ``num_classes=0`` builds none (``forward`` returns the pooled
    features), ``global_pool=""`` no pooling (as ``reset_classifier``, docs/model_api.md).
    """
    given = config.as_dict() if isinstance(config, ModelConfig) else dict(config or {})
    c = ModelConfig.from_options({**given, **options})
    multistep.check_options(c)  # what a multistep block refuses, and its options given to another block
    if c.arch in FAMILY_BUILDERS:  # transformer: residual functions of layers (horesnet/models/transformer.py)
        return FAMILY_BUILDERS[c.arch](c, global_pool)
    place = get_placement(c.placement)
    shortcut = normalise_shortcut(c.shortcut)  # A/B/C/plain (c keeps the option as given: a/b/c too)
    check_head(c.num_classes, global_pool)
    if c.step == 0 and not c.learn_step:
        raise ConfigError("step=0 switches every residual branch off for good; use it with learn_step=true (a "
                          "learnable step that starts at 0, as ReZero/SkipInit), or give a positive step.")
    layout = plan_layout(c.arch, c.depth, c.block, c.unit, c.stages, c.entry, c.strict, c.inner)
    warn_flagged(c.block, c.inner)  # a compatibility scheme (e.g. ho2021_rk8_published) says it is not a sound method
    if shortcut == "plain" and (c.block not in ("euler",) or c.inner):
        raise ConfigError(f"shortcut='plain' removes the skip s_x of every block, which only defines a network "
                          f"for block='euler' (the plain nets of He et al. 2015), not block={c.block!r}.")
    if c.tied and c.entry == "scheme" and c.block != "euler":
        raise ConfigError("tied=true shares one unit across a block's increments, but entry='scheme' makes the "
                          "first unit change resolution/width; use entry='euler' with tied=true.")
    expansion = get_unit(layout.unit).expansion
    widths = stage_widths(c.arch, c.width)
    need = estimate(layout, widths, c.stem_stride)["build_bytes"]
    check_fits(need, f"depth={layout.depth} (block={c.block}, width={c.width:g}, {sum(layout.units_per_stage):,} "
               "units)", hint="Choose a smaller depth or width.")
    stem_width = widths[0]
    if c.arch == "cifar":
        stem = [nn.Conv2d(c.in_channels, stem_width, 3, stride=c.stem_stride, padding=1, bias=False)]
    else:
        stem = [nn.Conv2d(c.in_channels, stem_width, 7, stride=2, padding=3, bias=False)]
    stem += place.stem_module(c.norm, stem_width)
    if c.arch == "imagenet":
        stem.append(nn.MaxPool2d(3, stride=2, padding=1))
    stage_modules, in_ch = [], stem_width
    for i, stage_layout in enumerate(layout.stages):
        out_ch, stride = widths[i] * expansion, (1 if i == 0 else 2)
        blocks = []
        for spec in stage_layout.blocks:
            entry_here = not blocks  # the first block of a stage changes resolution/width
            blocks.append(_make_block(c, layout.unit, shortcut, spec, in_ch, out_ch, stride if entry_here else 1))
            in_ch = out_ch
        stage_modules.append(Stage(*blocks))
    final = place.final_module(c.norm, in_ch)
    model = ResNet(Stem(stem), stage_modules, final, in_ch, c.num_classes, layout, c.as_dict(), global_pool)
    _init_weights(model)
    if c.zero_init_last:
        _zero_init_last(model)
    if c.drop_path_rate > 0:
        _add_drop_path(model, c.drop_path_rate)
    multistep.check_reversible(model, c)
    return model


def _zero_init_last(model: ResNet) -> None:
    for address, unit, _ in model.units():
        if not hasattr(unit, "zero_init_last"):
            raise ConfigError(f"zero_init_last=true needs units with a zero_init_last() method; the unit at {address} "
                              f"({type(unit).__name__}) has none (docs/extending.md, \"Units\").")
        unit.zero_init_last()


def _add_drop_path(model: ResNet, rate: float) -> None:
    """Stochastic depth: the l-th of the network's L increments is dropped with probability rate * l / L."""
    blocks = [block for _, block, _ in model.blocks()]
    if any(not isinstance(b, SchemeBlock) or b.shortcut is None for b in blocks):
        raise ConfigError(f"drop_path_rate={rate:g} drops residual branches; it needs scheme blocks with a skip, "
                          "not block='ode' or shortcut='plain'.")
    total = sum(b.scheme.increments for b in blocks)
    seen = 0
    for block in blocks:
        s = block.scheme.increments
        block.hook = DropPath([rate * (seen + i + 1) / total for i in range(s)])
        seen += s


@dataclass(frozen=True)
class Family:
    """An architecture family planned and built in its own module (``arch=transformer``): ``plan(depth, block,
    layout, strict, inner, stages, entry, unit) -> Layout`` and ``build(config, global_pool) -> nn.Module``."""

    name: str
    plan: Callable
    build: Callable


#: the families with their own planner and builder (horesnet.registry), registered by their module when the package
#: loads (horesnet/models/__init__.py imports it), so that this module and layout.py never import them
FAMILIES: Registry[Family] = Registry("family", sort=False, label="arch", plural="families")
# what plan_layout and build_model look up, derived from FAMILIES
FAMILY_BUILDERS: dict[str, Callable] = {}


@FAMILIES.on_change
def _derive_tables(name: str, old: Family | None, new: Family | None) -> None:
    for table, fn in ((FAMILY_PLANNERS, new and new.plan), (FAMILY_BUILDERS, new and new.build)):
        if new is None:
            table.pop(name, None)
        else:
            table[name] = fn


def register_family(name: str, plan: Callable, build: Callable, *, overwrite: bool = False) -> Family:
    """Register an architecture family: ``arch=<name>`` is then planned by ``plan`` and built by ``build``."""
    FAMILIES.check_new(name, overwrite=overwrite)
    for what, fn in (("plan", plan), ("build", build)):
        if not callable(fn):
            raise FAMILIES.error(f"family {name!r}: {what} must be a function, got {type(fn).__name__}.")
    return FAMILIES.register(name, Family(name, plan, build), overwrite=overwrite)


def get_family(name: str) -> Family:
    return FAMILIES.get(name)


def list_families() -> list[str]:
    return FAMILIES.names()


def unregister_family(name: str) -> Family:
    """Remove a user-registered family (built-ins cannot be removed); return it."""
    return FAMILIES.unregister(name)


def stage_widths(arch: str, width: float) -> list[int]:
    """Channels of each stage's units: 16/32/64 (CIFAR) or 64/128/256/512 (ImageNet), times ``width``."""
    if arch == "transformer":  # one stage; its width is d_model (the memory bound counts no weights for it)
        return [1]
    return [max(1, int(round(w * width))) for w in (CIFAR_WIDTHS if arch == "cifar" else IMAGENET_WIDTHS)]


def _make_unit(c: ModelConfig, unit: str, in_ch: int, out_ch: int, stride: int) -> nn.Module:
    """A unit of the registered kind ``unit`` (the layout's: ``c.unit`` with the family's default resolved)."""
    return get_unit(unit).build(in_ch, out_ch, stride, UnitOptions(c.placement, c.norm, c.stride_in_3x3))


def _make_block(c: ModelConfig, unit: str, shortcut: str, spec: BlockSpec, in_ch: int, out_ch: int,
                stride: int) -> nn.Module:
    """The block of ``spec``: units of kind ``unit``, skips of the normalised ``shortcut``, the rest from ``c``."""
    step = float(c.step)
    if spec.scheme == "ode":
        return ODEBlock(_make_unit(c, unit, out_ch, out_ch, 1), method=c.ode_method, rtol=c.ode_rtol,
                        atol=c.ode_atol, adjoint=c.ode_adjoint, t1=step)
    if spec.multistep:  # the stage's units after its entry block, one per step (docs/multistep.md)
        post = get_placement(c.placement).post_module
        units = [_make_unit(c, unit, out_ch, out_ch, 1) for _ in range(spec.units)]
        posts = [post(c.norm, out_ch) for _ in range(spec.units)]
        return multistep.make_block(spec.scheme, units, posts, step, c)
    scheme = get_scheme(spec.scheme)
    shape_change = stride != 1 or in_ch != out_ch
    tied = c.tied and scheme.increments > 1
    if tied and shape_change:
        raise ConfigError(f"tied=true cannot share one unit across a {scheme.name} block whose first unit "
                          f"changes shape ({in_ch}->{out_ch}, stride {stride}).")

    def make(i: int) -> nn.Module:
        cin, s = (in_ch, stride) if i == 0 else (out_ch, 1)
        if spec.inner is None:
            return _make_unit(c, unit, cin, out_ch, s)
        inner = get_scheme(spec.inner)
        inner_shortcut = make_shortcut(shortcut, cin, out_ch, s, c.norm)
        inner_units = [_make_unit(c, unit, cin if j == 0 else out_ch, out_ch, s if j == 0 else 1)
                       for j in range(inner.increments)]
        return NestedUnit(SchemeBlock(inner, inner_units, inner_shortcut, None, step, c.learn_step))

    units = [make(i) for i in range(1 if tied else scheme.increments)]
    skip = make_shortcut(shortcut, in_ch, out_ch, stride, c.norm)
    post = get_placement(c.placement).post_module(c.norm, out_ch)
    return SchemeBlock(scheme, units, skip, post, step, c.learn_step, tied)


def _init_weights(model: nn.Module) -> None:
    """He et al. 2015 initialisation ("Delving deep into rectifiers"), as torchvision's ResNet."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
