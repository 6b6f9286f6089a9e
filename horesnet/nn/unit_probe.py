"""A plugin unit built under watch (docs/extending.md, "Units"): its factory's failures (an exception, sys.exit,
KeyboardInterrupt) become plugin errors naming its file and line, and its output shape is checked once per
shape with a tiny probe (one 8x8 image, evaluation mode, no autograd), so a unit that returns the wrong shape is
refused by name at build time instead of failing deep inside a block."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..plugin_errors import CAUGHT, plugin_error, source_file

PROBE_SIDE = 8
_CHECKED: set[tuple] = set()  # (unit type, factory, in, out, stride, options) already probed


def build_checked(unit_type, in_channels: int, out_channels: int, stride: int, options) -> nn.Module:
    file = source_file(unit_type.factory)
    try:
        unit = unit_type.factory(in_channels, out_channels, stride, options)
    except ConfigError:
        raise
    except CAUGHT as err:
        raise plugin_error(f"unit {unit_type.name!r}: its factory", err, file) from None
    if not isinstance(unit, nn.Module):
        return unit  # refused by UnitType.build
    key = (unit_type.name, id(unit_type.factory), in_channels, out_channels, stride, options)
    if key not in _CHECKED:
        _probe(unit_type.name, unit, in_channels, out_channels, stride, source_file(type(unit)) or file)
        _CHECKED.add(key)
    return unit


def _probe(name: str, unit: nn.Module, in_channels: int, out_channels: int, stride: int, file: str | None) -> None:
    side = (PROBE_SIDE - 1) // stride + 1
    expected = (1, out_channels, side, side)
    param = next(iter(unit.parameters()), None)
    x = torch.zeros(1, in_channels, PROBE_SIDE, PROBE_SIDE,
                    dtype=param.dtype if param is not None and param.is_floating_point() else torch.float32,
                    device=param.device if param is not None else "cpu")
    was_training = unit.training
    try:
        unit.eval()  # BatchNorm's running statistics stay as built
        with torch.no_grad():
            out = unit(x)
    except ConfigError:
        raise
    except CAUGHT as err:
        raise plugin_error(f"unit {name!r}: its forward on a {tuple(x.shape)} probe", err, file) from None
    finally:
        unit.train(was_training)
    shape = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
    if shape != expected:
        raise ConfigError(f"plugin error: unit {name!r} (in {file or 'its plugin'}) returned {shape} for an input "
                          f"of {tuple(x.shape)} (in_channels={in_channels}, out_channels={out_channels}, "
                          f"stride={stride}); a unit must return {expected}: out_channels channels, the spatial "
                          "size divided by stride (docs/extending.md, \"Units\").")


def check_placement(unit_type, options) -> None:
    """Refuse a placement the unit does not implement (the network around it would change while it ignores it)."""
    allowed = unit_type.supported_placements()
    if allowed is not None and options.placement not in allowed:
        raise ConfigError(f"unit {unit_type.name!r} does not implement placement={options.placement!r}; valid for "
                          f"it: {', '.join(repr(p) for p in allowed)} (a unit declares what it implements with "
                          "register_unit(..., placements=(...)); docs/extending.md, \"What a unit supports\").")


def check_declared(unit_type, unit: nn.Module) -> None:
    """A unit that declares ``zero_init_last=True`` or ``responses=True`` must have that method."""
    for method in ("zero_init_last", "responses"):
        if getattr(unit_type, method) and not callable(getattr(unit, method, None)):
            raise ConfigError(f"unit {unit_type.name!r} declares {method}=True but its module "
                              f"{type(unit).__name__} has no {method}() method (docs/extending.md, \"What a unit "
                              "supports\").")
