"""Residual functions F ("units") and their registry (docs/extending.md, "Units").

A unit type is registered once with :func:`register_unit`: a factory ``(in_channels, out_channels, stride,
options) -> nn.Module`` and the number of weighted (conv) layers one unit holds, which the equal-depth rule counts.
``basic`` = two 3x3 convs, ``bottleneck`` = 1x1, 3x3, 1x1 with expansion 4 (He et al. 2015, Fig. 5); both are
:class:`ConvUnit` stacks whose BN/ReLU follow the placement (He et al. 2016, Fig. 4).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.nn.functional as F
from torch import nn

from ..errors import PLUGIN_HINT, ConfigError
from ..registry import Registry
from .norms import make_norm
from .placements import get_placement


@dataclass(frozen=True)
class UnitOptions:
    """What every unit factory is told besides its shape: the activation placement, the norm, and the bottleneck's
    stride position (``stride_in_3x3``: torchvision's "ResNet V1.5"). A factory may ignore what does not apply."""

    placement: str = "original"
    norm: str = "batch"
    stride_in_3x3: bool = False

    def norm_layer(self, channels: int) -> nn.Module:
        return make_norm(self.norm, channels)


UnitFactory = Callable[[int, int, int, UnitOptions], nn.Module]


@dataclass(frozen=True)
class UnitType:
    """A registered unit: ``factory`` builds one unit; ``convs`` weighted layers per unit (CIFAR depth =
    3 * convs * n + 2); ``expansion`` multiplies the stage width into the unit's output channels; ``cost(c)``
    gives (weights, output channels summed over its layers) of one unit of width ``c``, a lower bound used to
    refuse networks that cannot fit in memory (None: counted as zero)."""

    name: str
    factory: UnitFactory
    convs: int
    expansion: int = 1
    cost: Callable[[int], tuple[int, int]] | None = None
    description: str = ""
    placements: tuple[str, ...] | None = None  # what it implements (docs/extending.md, "What a unit supports")
    zero_init_last: bool | None = None
    responses: bool | None = None

    def supported_placements(self) -> tuple[str, ...] | None:
        """The placements this unit implements; None: every registered one (horesnet's own units). A plugin's
        unit that declares none implements only ``original``."""
        from ..plugin_errors import is_plugin

        if self.placements is not None:
            return tuple(self.placements)
        return ("original",) if is_plugin(self.factory) else None

    def build(self, in_channels: int, out_channels: int, stride: int = 1,
              options: UnitOptions | None = None) -> nn.Module:
        from ..plugin_errors import is_plugin
        from .unit_probe import check_declared, check_placement

        check_placement(self, options or UnitOptions())
        if is_plugin(self.factory):  # a plugin's unit: its failures are plugin errors, its output shape is probed
            from .unit_probe import build_checked

            unit = build_checked(self, in_channels, out_channels, stride, options or UnitOptions())
        else:
            unit = self.factory(in_channels, out_channels, stride, options or UnitOptions())
        if not isinstance(unit, nn.Module):
            raise ConfigError(f"unit {self.name!r}: its factory returned {type(unit).__name__}, not an nn.Module.")
        for key, value in (("in_channels", in_channels), ("out_channels", out_channels), ("stride", stride)):
            if not hasattr(unit, key):  # the block and the analysis tools read a unit's shape from these
                setattr(unit, key, value)
        check_declared(self, unit)
        return unit


#: every unit type by name (horesnet.registry): horesnet.nn locks the built-ins once it has registered them
UNITS: Registry[UnitType] = Registry("unit", sort=False, hint=PLUGIN_HINT)


def register_unit(name: str, factory: UnitFactory, convs: int, expansion: int = 1,
                  cost: Callable[[int], tuple[int, int]] | None = None, description: str = "",
                  overwrite: bool = False, placements: tuple[str, ...] | None = None,
                  zero_init_last: bool | None = None, responses: bool | None = None) -> UnitType:
    """Register a unit type; ``unit=<name>`` then builds it under every scheme (``block=rk4 unit=<name>``).
    ``placements``: the placements it implements (a plugin's unit declaring none: ``original`` only);
    ``zero_init_last``/``responses``: whether it provides those methods (checked when a unit is built)."""
    UNITS.check_new(name, overwrite=overwrite)
    for key, value in (("convs", convs), ("expansion", expansion)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"unit {name!r}: {key} must be a positive integer, got {value!r}.")
    return UNITS.register(name, UnitType(name, factory, convs, expansion, cost, description,
                                         tuple(placements) if placements is not None else None, zero_init_last,
                                         responses), overwrite=overwrite)


def get_unit(name: str) -> UnitType:
    return UNITS.get(name)


def list_units() -> list[str]:
    return UNITS.names()


def unregister_unit(name: str) -> UnitType:
    """Remove a user-registered unit type (built-ins cannot be removed); return it."""
    return UNITS.unregister(name)


def make_unit(name: str, in_channels: int, out_channels: int, stride: int = 1, **options) -> nn.Module:
    """One unit of a registered type, e.g. ``make_unit("bottleneck", 256, 256, placement="full_preact")``."""
    return get_unit(name).build(in_channels, out_channels, stride, UnitOptions(**options))


class ConvUnit(nn.Module):
    """A conv stack ``specs = [(kernel, in, out, stride), ...]`` with BN/ReLU placed per ``placement``.

    Layers are ``convs[i]`` / ``norms[i]`` (norms in forward order) so analysis can hook them.
    """

    def __init__(self, kind: str, specs: list[tuple[int, int, int, int]], placement: str = "original",
                 norm: str = "batch"):
        super().__init__()
        self.kind, self.placement = kind, placement
        self.in_channels, self.out_channels = specs[0][1], specs[-1][2]
        self.stride = max(s for *_, s in specs)
        self.convs = nn.ModuleList(
            nn.Conv2d(i, o, k, stride=s, padding=k // 2, bias=False) for k, i, o, s in specs
        )
        norm_channels, program = [], []
        for c, ((_, cin, cout, _), ops) in enumerate(zip(specs, get_placement(placement).unit_ops(len(specs)),
                                                         strict=True)):
            for op in ops:
                if op == "conv":
                    program.append(("conv", c))
                elif op == "norm":
                    program.append(("norm", len(norm_channels)))
                    norm_channels.append(cout if ops.index("norm") > ops.index("conv") else cin)
                else:  # a ReLU on the unit's own input must not overwrite it
                    program.append(("relu", bool(program)))
        self.norms = nn.ModuleList(make_norm(norm, c) for c in norm_channels)
        self._program = tuple(program)

    @property
    def downsampling(self) -> bool:
        return self.stride != 1 or self.in_channels != self.out_channels

    def out_shape(self, in_shape) -> tuple:
        """The output shape for an input of ``in_shape`` (B, C, H, W): ``(B, out_channels, ceil(H/stride),
        ceil(W/stride))``, as the block reads it (docs/extending.md, "Units")."""
        return in_shape[0], self.out_channels, -(-in_shape[2] // self.stride), -(-in_shape[3] // self.stride)

    def zero_init_last(self) -> None:
        """gamma = 0 (and beta = 0) in the unit's last norm: whatever the placement, the unit then outputs 0 and
        its block starts as its shortcut path (Goyal et al. 2017, Sec. 5.1)."""
        nn.init.zeros_(self.norms[-1].weight)
        nn.init.zeros_(self.norms[-1].bias)

    def responses(self) -> list[tuple[nn.Conv2d, nn.Module]]:
        """``(conv, module)`` for each conv: ``module``'s output is the conv's response after BN and before the
        nonlinearity (He et al. 2015, Fig. 7): the norm that directly follows the conv, else the conv itself."""
        out = []
        for pos, (op, i) in enumerate(self._program):
            if op == "conv":
                nxt = self._program[pos + 1] if pos + 1 < len(self._program) else None
                out.append((self.convs[i], self.norms[nxt[1]] if nxt and nxt[0] == "norm" else self.convs[i]))
        return out

    def forward(self, x):
        convs, norms = list(self.convs), list(self.norms)  # list indexing: ModuleList's costs microseconds a call
        for op, i in self._program:
            if op == "conv":
                x = convs[i](x)
            elif op == "norm":
                x = norms[i](x)
            else:
                x = F.relu(x, inplace=i)
        return x

    def extra_repr(self) -> str:
        return f"{self.kind}, {self.in_channels}->{self.out_channels}, stride={self.stride}, {self.placement}"


def _basic(in_channels: int, out_channels: int, stride: int, options: UnitOptions) -> ConvUnit:
    specs = [(3, in_channels, out_channels, stride), (3, out_channels, out_channels, 1)]
    return ConvUnit("basic", specs, options.placement, options.norm)


def _bottleneck(in_channels: int, out_channels: int, stride: int, options: UnitOptions) -> ConvUnit:
    mid = out_channels // 4
    s1, s3 = (1, stride) if options.stride_in_3x3 else (stride, 1)
    specs = [(1, in_channels, mid, s1), (3, mid, mid, s3), (1, mid, out_channels, 1)]
    return ConvUnit("bottleneck", specs, options.placement, options.norm)


register_unit("basic", _basic, convs=2, cost=lambda c: (2 * 9 * c * c, 2 * c), zero_init_last=True, responses=True,
              description="two 3x3 convs (He et al. 2015, Fig. 5 left)")
register_unit("bottleneck", _bottleneck, convs=3, expansion=4, cost=lambda c: (17 * c * c, 6 * c),
              zero_init_last=True, responses=True,
              description="1x1, 3x3, 1x1 convs, expansion 4 (He et al. 2015, Fig. 5 right)")
