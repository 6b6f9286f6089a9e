"""The network: stem, stages of blocks, head (He et al. 2015, Sec. 4.2 for CIFAR, Table 1 for ImageNet).

Follows timm's model contract (``forward_features`` / ``forward_head`` / ``forward_intermediates`` ...,
docs/model_api.md) and exposes its structure to
analysis tools through ``blocks()`` and ``units()``, which name every unit by a stable address such as
``s2.b1.u3`` (stage 2, block 1, increment 3; nested units add ``.u<j>``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from ..nn import NestedUnit, ODEBlock, SchemeBlock
from ..nn.block import NO_TORCHSCRIPT
from ..nn.multistep import MultistepBlock
from ..nn.recompute import checkpointed
from .contract import TimmContract
from .layout import BlockSpec, Layout


@dataclass(frozen=True)
class UnitInfo:
    """Where a unit sits and what it does. ``increment`` is 1-based; ``path`` adds nested increments."""

    stage: int
    block: int
    increment: int
    scheme: str
    entry: bool
    downsampling: bool
    leftover: bool = False
    tied: bool = False
    ode: bool = False
    path: tuple[int, ...] = ()


def run_block(block: nn.Module, x):
    """``block(x)``; a block that cannot checkpoint its units itself (an ODE block) is checkpointed whole when
    ``set_grad_checkpointing`` marked it (``recompute_block``)."""
    if getattr(block, "recompute_block", False) and torch.is_grad_enabled():
        return checkpointed(block, x)
    return block(x)


class Stem(nn.ModuleList):
    """The stem's layers (conv, norm/ReLU, ImageNet's max-pool), run in order: an ``nn.Sequential`` in all but
    its class, so that timm's ``flatten_sequential`` keeps it one module, ``stem``, the module of feature tap 0
    (docs/model_api.md). Its parameters are named as a Sequential's (``stem.0.weight``)."""

    def forward(self, x):
        for layer in self:
            x = layer(x)
        return x


class Stage(nn.Sequential):
    """One stage: its blocks, run in order by its own ``forward`` (with whole-block checkpointing where
    ``set_grad_checkpointing`` put it), so that hooks on ``stages.i`` -- the module of a feature tap -- fire and
    timm's and torchvision's module-based feature extractors can call it."""

    def forward(self, x):
        for block in self:
            x = run_block(block, x)
        return x


class ResNet(TimmContract, nn.Module):
    """A residual network whose blocks are steps of explicit Runge-Kutta schemes (or ODE solves), with timm's
    model contract (``horesnet.models.contract``, docs/model_api.md)."""

    def __init__(self, stem: nn.Module, stages: list[nn.Sequential], final: nn.Module, num_features: int,
                 num_classes: int, layout: Layout, config: dict, global_pool: str = "avg"):
        super().__init__()
        self.stem = stem if isinstance(stem, Stem) else Stem(stem)
        # an nn.Sequential of Stage modules (state-dict keys stages.<i>.<j>...): timm's flatten_sequential and
        # torchvision's IntermediateLayerGetter(model.stages, ...) see one module per stage
        self.stages = nn.Sequential(*(s if isinstance(s, Stage) else Stage(*s) for s in stages))
        self.final = final
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = self.head_hidden_size = num_features
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.fc = nn.Linear(num_features, num_classes) if num_classes else nn.Identity()
        self.layout = layout
        self.config = dict(config)

    def forward_stages(self, x):
        """Run every stage (each runs its blocks, with activation checkpointing where ``set_grad_checkpointing``
        put it)."""
        return self.stages(x)

    def forward_block(self, block: nn.Module, x):
        """``block(x)``; a block that cannot checkpoint its units itself (an ODE block) is checkpointed whole when
        ``set_grad_checkpointing`` marked it."""
        return run_block(block, x)

    def forward_stem(self, x):
        return self.stem(x)

    def forward_final(self, x):
        """The last stage's output -> features (BN-ReLU for full pre-activation, identity otherwise)."""
        return self.final(x)

    def forward_features(self, x):
        return self.final(self.forward_stages(self.stem(x)))

    def forward(self, x):
        return self.forward_head(self.forward_features(x))

    def blocks(self) -> Iterator[tuple[str, nn.Module, BlockSpec]]:
        """``(address, block module, BlockSpec)`` in forward order, addresses like ``s2.b1``."""
        for si, (stage, stage_layout) in enumerate(zip(self.stages, self.layout.stages, strict=True), 1):
            for bi, (block, spec) in enumerate(zip(stage, stage_layout.blocks, strict=True), 1):
                yield f"s{si}.b{bi}", block, spec

    def units(self) -> Iterator[tuple[str, nn.Module, UnitInfo]]:
        """``(address, unit module, UnitInfo)`` for every unit F in forward order.

        A tied block yields its one shared module once per increment, each with its own address.
        """
        for address, block, spec in self.blocks():
            si, bi = (int(p[1:]) for p in address.split("."))
            if isinstance(block, ODEBlock):
                unit = block.func.unit
                yield f"{address}.u1", unit, UnitInfo(si, bi, 1, "ode", spec.entry, False, ode=True)
                continue
            if isinstance(block, MultistepBlock):  # one unit per step: s2.b2.u1 .. s2.b2.uT
                for i, unit in enumerate(block.units, 1):
                    yield f"{address}.u{i}", unit, UnitInfo(si, bi, i, block.scheme.name, False, False, path=(i,))
                continue
            yield from _block_units(address, block, si, bi, spec, ())

    @property
    def nfe(self) -> int:
        """Function evaluations of the ODE blocks in the last forward pass (0 without ODE blocks)."""
        return sum(m.nfe for m in self.modules() if isinstance(m, ODEBlock))

    def __prepare_scriptable__(self):
        """``torch.jit.script(model)`` is refused with the alternatives (docs/model_api.md, "TorchScript")."""
        raise ConfigError(NO_TORCHSCRIPT)

    @property
    def learnable_steps(self) -> list[nn.Parameter]:
        return [m.step for m in self.modules() if isinstance(m, SchemeBlock | MultistepBlock) and m.learn_step]

    def learned_coefficients(self) -> dict[str, dict]:
        """``{block address: {name: value}}`` of every multistep block's learned coefficients (momentum's gamma,
        lm's k -- a list when per channel --, average's weights), as they are now."""
        return {address: block.coefficients.values() for address, block, _ in self.blocks()
                if isinstance(block, MultistepBlock) and block.coefficients.family is not None}


def _block_units(address, block: SchemeBlock, si, bi, spec, path):
    for i in range(block.scheme.increments):
        unit = block.unit(i)
        here = f"{address}.u{i + 1}"
        if isinstance(unit, NestedUnit):
            yield from _block_units(here, unit.block, si, bi, spec, path + (i + 1,))
            continue
        down = getattr(unit, "downsampling", False)
        info = UnitInfo(si, bi, (path or (i + 1,))[0], block.scheme.name, spec.entry, down,
                        spec.leftover, block.tied, path=path + (i + 1,))
        yield here, unit, info
