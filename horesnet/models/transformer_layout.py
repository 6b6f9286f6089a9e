"""The equal-depth rule for Transformer stacks (docs/transformers.md, "Layouts"), as pure data.

``depth`` counts residual functions -- attention and MLP branches alike -- so a depth fixes the network's
parameters whatever the scheme; ``layout`` says what one unit is and ``block`` only groups units into blocks:

- ``alternate``: a unit per residual function, A, M, A, M, ... (2 per layer). Euler: the pre-norm Transformer.
- ``layer``: a unit per whole layer, G(x) = layer(x) - x (2 residual functions each). Euler: the pre-norm
  Transformer again; RK2/RK4: the ODE Transformer (Li et al. 2022) with the layer's residual as F.
- ``macaron``: M, A, M per layer with steps 1/2, 1, 1/2: Macaron Net's Strang splitting (Lu et al. 2019). It is a
  splitting scheme itself, so it holds only ``block=euler``.

A multistep scheme (``block=lm|momentum|...``, docs/multistep.md) takes all the units as one block, one unit per
step: there is no entry block (nothing changes shape), so the stage starts from the embedded input x_0 and its first
steps follow the scheme's starter rule (momentum: v_0 = 0).

Units that do not fill a scheme block become Euler blocks (``strict=true`` refuses them), as in the conv families.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError, check_choice
from ..schemes import get_scheme, list_schemes
from .layout import BlockSpec, Layout, StageLayout

LAYOUTS = ("alternate", "layer", "macaron")
PATTERN = {"alternate": ("attn", "mlp"), "layer": ("layer",), "macaron": ("mlp", "attn", "mlp")}
FUNCTIONS_PER_LAYER = {"alternate": 2, "layer": 2, "macaron": 3}  # residual functions of one Transformer layer
STEPS = {"macaron": (0.5, 1.0, 0.5)}  # per-unit step factor of the pattern (1 elsewhere)


@dataclass(frozen=True)
class TransformerLayout(Layout):
    """A :class:`Layout` of one stage whose units follow ``pattern`` (``units`` names each unit in order)."""

    layout: str = "alternate"
    units: tuple[str, ...] = ()
    steps: tuple[float, ...] = ()

    @property
    def layers(self) -> int:
        return self.depth // FUNCTIONS_PER_LAYER[self.layout]

    @property
    def conv_layers(self) -> int:
        """Residual functions (attention and MLP branches): what ``depth`` counts."""
        return self.depth

    def describe(self) -> str:
        kind = {"alternate": "attention/MLP units", "layer": "whole-layer units G(x) = layer(x) - x",
                "macaron": "MLP/2, attention, MLP/2 units"}[self.layout]
        return (f"transformer: {self.depth} residual functions = {self.layers} layers ({self.layout}: "
                f"{len(self.units)} {kind})\n" + super().describe())


def _increments(block: str) -> int:
    """Units of one ``block`` block: a multistep block holds any number (at least one)."""
    scheme = get_scheme(block)
    return 1 if scheme.kind == "multistep" else scheme.increments


def _holds(layout: str, block: str, strict: bool, depth: int) -> bool:
    """Whether ``depth`` residual functions make at least one ``block`` block (and, when strict, no leftovers)."""
    count, s = depth // (2 if layout == "layer" else 1), _increments(block)
    return count >= s and not (strict and block != "euler" and count % s)


def valid_depths(layout: str, block: str, strict: bool, near: int, count: int = 2) -> list[int]:
    """Valid depths around ``near`` (for error messages)."""
    per = FUNCTIONS_PER_LAYER[layout]
    top = max(near, per) + 4 * per * _increments(block)
    out = [d for d in range(per, top + 1, per) if _holds(layout, block, strict, d)]
    below = [d for d in out if d < near][-1:]
    return below + [d for d in out if d > near][:count - len(below)]


def plan_transformer(depth, block: str = "euler", layout: str = "alternate", strict: bool = False,
                     inner: str | None = None, stages=None, entry: str = "euler", unit: str | None = None,
                     tied: bool = False) -> TransformerLayout:
    """Group ``depth`` residual functions into blocks of ``block``; raise ConfigError for an impossible request."""
    check_choice("layout", layout, LAYOUTS)
    check_choice("block", block, list_schemes() + ["ode"])
    for name, value, why in (("inner", inner, "nested schemes are not built for Transformer stacks"),
                             ("stages", stages, "a Transformer stack has one stage; give depth= (residual "
                                                "functions)"),
                             ("unit", unit, "the units follow layout= (alternate: attn/mlp, layer: layer, "
                                            "macaron: mlp/attn/mlp)")):
        if value is not None:
            raise ConfigError(f"{name}={value!r} does not apply to arch='transformer': {why}.")
    if entry != "euler":
        raise ConfigError(f"entry={entry!r} does not apply to arch='transformer': no block changes the width or the "
                          "token count, so there is no entry block.")
    if block == "ode":
        raise ConfigError("block='ode' is not built for arch='transformer'; give a Runge-Kutta scheme.")
    per = FUNCTIONS_PER_LAYER[layout]
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < per or depth % per:
        raise ConfigError(f"impossible depth {depth!r} for arch='transformer' layout={layout!r}: depth counts residual "
                          f"functions (attention and MLP alike), {per} per layer, so it must be a positive multiple "
                          f"of {per} (e.g. depth={4 * per} for 4 layers).")
    if layout == "macaron" and block != "euler":
        raise ConfigError(f"layout='macaron' is itself a splitting scheme (Strang: MLP/2, attention, MLP/2), so it "
                          f"holds only block='euler', not block={block!r}; use layout='alternate' or 'layer' for "
                          "Runge-Kutta schemes.")
    if tied and layout != "layer" and block != "euler":
        raise ConfigError(f"tied=true shares one unit across a block's increments, but layout={layout!r} mixes "
                          "attention and MLP units in a block; use layout='layer' with tied=true.")
    pattern = PATTERN[layout]
    count = depth // (2 if layout == "layer" else 1)
    names = tuple(pattern[i % len(pattern)] for i in range(count))
    steps = tuple(STEPS.get(layout, (1.0,) * len(pattern))[i % len(pattern)] for i in range(count))
    if get_scheme(block).kind == "multistep":  # every unit, one per step (no entry block: no shape change)
        stage = StageLayout(1, count, (BlockSpec(block, count),))
        return TransformerLayout("transformer", "layer" if layout == "layer" else "attn", block, depth, (stage,),
                                 True, layout, names, steps)
    s = get_scheme(block).increments
    q, r = divmod(count, s)
    blocks = [BlockSpec(block, s)] * q + [BlockSpec("euler", 1, leftover=block != "euler")] * r
    if q == 0:
        raise ConfigError(f"block={block!r} holds {s} units, but depth {depth} (layout={layout!r}) gives {count} "
                          f"unit(s) and would hold no {block} block at all. Nearest valid depths: "
                          f"{', '.join(map(str, valid_depths(layout, block, strict, depth)))}.")
    if strict and block != "euler" and r:
        raise ConfigError(f"strict=true: depth {depth} (layout={layout!r}) leaves {r} unit(s) that do not fill a "
                          f"{block} block of {s} units. Nearest valid depths: "
                          f"{', '.join(map(str, valid_depths(layout, block, True, depth)))}.")
    stage = StageLayout(1, count, tuple(blocks))
    return TransformerLayout("transformer", "layer" if layout == "layer" else "attn", block, depth, (stage,),
                             True, layout, names, steps)

