"""Activation placements: where BN and ReLU sit around a unit's convs, after the addition, in the stem and before
the head (He et al. 2016, Fig. 4 (a)-(e); ``preact_relu_after_add`` is the HO-ResNet authors' unit, docs/ho2021.md).
A placement is data: one record of op sequences, no per-placement code (docs/extending.md, "Placements").

Ops are ``"conv"``, ``"norm"`` and ``"relu"``. A ReLU runs in place unless it is the first op of a sequence that
reads someone else's tensor (a unit's input, the network's last block output).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..errors import PLUGIN_HINT, ConfigError
from ..registry import Registry
from .norms import make_norm

OPS = ("conv", "norm", "relu")


@dataclass(frozen=True)
class Placement:
    """``conv``: the ops around each conv of a unit but the last; ``last``: around its last conv; ``post``: after
    the block's addition; ``stem``: after the stem conv; ``final``: after the last stage, before pooling."""

    name: str
    conv: tuple[str, ...]
    last: tuple[str, ...]
    post: tuple[str, ...]
    stem: tuple[str, ...]
    final: tuple[str, ...]
    description: str = ""

    def unit_ops(self, convs: int) -> list[tuple[str, ...]]:
        """The op sequence around each of a unit's ``convs`` convs."""
        return [self.conv] * (convs - 1) + [self.last]

    def post_module(self, norm: str, channels: int) -> nn.Module:
        return op_modules(self.post, norm, channels, first_in_place=True)

    def stem_module(self, norm: str, channels: int) -> list[nn.Module]:
        """What follows the stem conv, as a list (the stem is one flat ``nn.Sequential``)."""
        return _ops(self.stem, norm, channels, first_in_place=True)

    def final_module(self, norm: str, channels: int) -> nn.Module:
        return op_modules(self.final, norm, channels, first_in_place=False)


def _ops(names, norm: str, channels: int, first_in_place: bool) -> list[nn.Module]:
    return [make_norm(norm, channels) if op == "norm" else nn.ReLU(inplace=first_in_place or i > 0)
            for i, op in enumerate(names)]


def op_modules(names, norm: str, channels: int, first_in_place: bool) -> nn.Module:
    """``names`` (norm/relu ops) as one module: Identity, the single op, or an ``nn.Sequential``."""
    mods = _ops(names, norm, channels, first_in_place)
    if not mods:
        return nn.Identity()
    return mods[0] if len(mods) == 1 else nn.Sequential(*mods)


#: every placement by name (horesnet.registry): the built-ins below are locked, users add theirs
PLACEMENTS: Registry[Placement] = Registry("placement", sort=False, hint=PLUGIN_HINT)


def register_placement(placement: Placement, overwrite: bool = False) -> Placement:
    """Add ``placement`` to the registry (its name, identifier-like, becomes a valid ``placement=``)."""
    if not isinstance(placement, Placement):
        raise PLACEMENTS.error(f"register_placement takes a Placement(name, conv, last, post, stem, final); got "
                               f"{type(placement).__name__}.")
    PLACEMENTS.check_new(placement.name, overwrite=overwrite)
    for field in ("conv", "last"):
        ops = getattr(placement, field)
        if ops.count("conv") != 1 or any(op not in OPS for op in ops):
            raise ConfigError(f"placement {placement.name!r}: {field}={ops!r} must hold exactly one 'conv' and "
                              f"only ops {OPS}.")
    for field in ("post", "stem", "final"):
        if any(op not in ("norm", "relu") for op in getattr(placement, field)):
            raise ConfigError(f"placement {placement.name!r}: {field} may only hold 'norm' and 'relu'.")
    return PLACEMENTS.register(placement.name, placement, overwrite=overwrite)


def get_placement(name: str) -> Placement:
    return PLACEMENTS.get(name)


def list_placements() -> list[str]:
    return PLACEMENTS.names()


def unregister_placement(name: str) -> Placement:
    """Remove a user-registered placement (built-ins cannot be removed); return it."""
    return PLACEMENTS.unregister(name)


_CBR, _CB = ("conv", "norm", "relu"), ("conv", "norm")
for _p in (
    Placement("original", _CBR, _CB, ("relu",), ("norm", "relu"), (), "(a) conv-BN-ReLU, BN before the addition, "
              "ReLU after it (He et al. 2015)"),
    Placement("bn_after_add", _CBR, ("conv",), ("norm", "relu"), ("norm", "relu"), (), "(b) BN after the addition"),
    Placement("relu_before_add", _CBR, _CBR, (), ("norm", "relu"), (), "(c) ReLU before the addition"),
    Placement("relu_only_preact", ("relu", "conv", "norm"), ("relu", "conv", "norm"), (), ("norm",), ("relu",),
              "(d) ReLU-only pre-activation"),
    Placement("full_preact", ("norm", "relu", "conv"), ("norm", "relu", "conv"), (), (), ("norm", "relu"),
              "(e) full pre-activation BN-ReLU-conv (He et al. 2016)"),
    Placement("preact_relu_after_add", ("norm", "relu", "conv"), ("norm", "relu", "conv"), ("relu",), ("norm", "relu"),
              (), "BN-ReLU-conv units + ReLU after the addition (the HO-ResNet authors' code, Luo et al. 2021)"),
):
    register_placement(_p)
PLACEMENTS.lock_builtins()
