"""The equal-depth rule (docs/design.md, "Networks and the equal-depth rule"), as pure data.

A depth fixes the number of units per stage; the scheme only decides how they are grouped. With
``entry="euler"`` each stage opens with one Euler entry block and the other n-1 units are grouped into
blocks of s units (s = increments of the scheme, times the inner scheme's increments when nested); units that do
not fill a block become Euler blocks ("leftovers"). With ``entry="scheme"`` the first scheme block's first
unit does the stride/width change (the HO-ResNet authors' layout). A multistep scheme (docs/multistep.md) takes
the n-1 units after the Euler entry block as one block of n-1 steps, its first steps taken by its starter rule.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import PLUGIN_HINT, ConfigError, check_choice
from ..nn.units import get_unit, list_units
from ..schemes import get_scheme, list_schemes

CONV_ARCHS = ("cifar", "imagenet")  # the He et al. families planned here; others are registered families
ARCHS = ("cifar", "imagenet", "transformer")  # the built-in families (horesnet.list_families() adds plugins')
# families whose layout is planned in their own module, which registers its planner here when the package loads
# (horesnet/models/__init__.py imports it): this module never imports them, so imports point one way
FAMILY_PLANNERS: dict = {}
ENTRIES = ("euler", "scheme")
IMAGENET_STAGES = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
}


def list_blocks() -> list[str]:
    """Every valid ``block=``: each registered scheme (Runge-Kutta and multistep), plus ``ode`` (continuous depth)."""
    return list_schemes("all") + ["ode"]


@dataclass(frozen=True)
class BlockSpec:
    """One block of a stage: its scheme, how many (leaf) units it holds, and its role."""

    scheme: str
    units: int
    entry: bool = False
    leftover: bool = False
    inner: str | None = None

    @property
    def multistep(self) -> bool:
        """A multistep block: all the units of a stage after its entry block, one per step."""
        return is_multistep(self.scheme)

    @property
    def label(self) -> str:
        name = f"{self.scheme}[{self.inner}]" if self.inner else self.scheme
        return name + ("*" if self.entry else "") + ("'" if self.leftover else "")


@dataclass(frozen=True)
class StageLayout:
    index: int
    units: int
    blocks: tuple[BlockSpec, ...]

    @property
    def leftovers(self) -> int:
        return sum(b.units for b in self.blocks if b.leftover)


@dataclass(frozen=True)
class Layout:
    arch: str
    unit: str
    block: str
    depth: int
    stages: tuple[StageLayout, ...]
    equal_depth: bool = True

    @property
    def units_per_stage(self) -> tuple[int, ...]:
        return tuple(s.units for s in self.stages)

    @property
    def conv_layers(self) -> int:
        """3x3/1x1 conv layers of the units (projection shortcuts excluded), as the paper counts depth."""
        return sum(self.units_per_stage) * get_unit(self.unit).convs

    @property
    def leftovers(self) -> int:
        return sum(s.leftovers for s in self.stages)

    def scheme_blocks(self) -> int:
        """How many blocks of the requested scheme (not counting Euler entry/leftover blocks)."""
        return sum(1 for s in self.stages for b in s.blocks if b.scheme == self.block and not b.leftover)

    def describe(self) -> str:
        """One line per stage, e.g. ``stage 1: 9 units = euler* + rk4 x2``."""
        lines = []
        for s in self.stages:
            parts, prev, count = [], None, 0
            for b in s.blocks + (None,):
                label = b.label if b else None
                if label == prev:
                    count += 1
                    continue
                if prev is not None:
                    parts.append(prev if count == 1 else f"{prev} x{count}")
                prev, count = label, 1
            extra = f"  ({s.leftovers} leftover unit(s) as Euler blocks)" if s.leftovers else ""
            for b in s.blocks:
                if b.multistep:  # one block of b.units steps
                    parts[-1] = f"{b.label} x{b.units} (starter: {starter_text(b.scheme, b.units)})"
            lines.append(f"stage {s.index}: {s.units} units = {' + '.join(parts)}{extra}")
        return "\n".join(lines)


def starter_text(block: str, units: int) -> str:
    """How a multistep stage of ``units`` steps takes the steps that lack history (docs/multistep.md, "Starter
    rule"), e.g. ``v_0 = 0 (x_-1 = x_0)`` for momentum."""
    s = get_scheme(block)
    if s.history == "stage":
        return "each step averages the states it has"
    missing = min(s.k - 1, units)
    if missing == 0:
        return "none needed"
    if s.starter == "euler":
        return f"{missing} Euler step{'s' if missing > 1 else ''}"
    if s.k == 2:
        return "v_0 = 0 (x_-1 = x_0)"
    return f"x_-1..x_-{s.k - 1} = x_0"


def is_multistep(block) -> bool:
    """Whether ``block`` names a registered multistep scheme (False for ``ode`` and unknown names)."""
    return block in list_schemes("multistep")


def units_per_block(block: str, inner: str | None) -> int:
    if block == "ode":
        return 1
    if is_multistep(block):
        return 1  # the fewest units a multistep block can hold; it takes all the units after the entry block
    n = get_scheme(block).increments
    return n * get_scheme(inner).increments if inner else n


def _stage_blocks(n: int, block: str, inner: str | None, entry: str) -> tuple[BlockSpec, ...]:
    if block == "ode":
        return (BlockSpec("euler", 1, entry=True), BlockSpec("ode", 1))
    if is_multistep(block):
        return (BlockSpec("euler", 1, entry=True),) + ((BlockSpec(block, n - 1),) if n > 1 else ())
    s = units_per_block(block, inner)
    if block == "euler" and not inner:
        return tuple(BlockSpec("euler", 1, entry=(i == 0)) for i in range(n))
    if entry == "euler":
        q, r = divmod(n - 1, s)
        blocks = [BlockSpec("euler", 1, entry=True)] + [BlockSpec(block, s, inner=inner)] * q
    else:
        q, r = divmod(n, s)
        blocks = [BlockSpec(block, s, entry=(i == 0), inner=inner) for i in range(q)]
        if q == 0:  # the stage holds no scheme block: its first Euler block does the entry
            return tuple(BlockSpec("euler", 1, entry=(i == 0), leftover=True) for i in range(n))
    return tuple(blocks + [BlockSpec("euler", 1, leftover=True)] * r)


def _plan(arch, unit, per_stage, block, inner, entry, strict, depth) -> Layout:
    stages = []
    for i, n in enumerate(per_stage):
        blocks = _stage_blocks(n, block, inner, entry)
        stages.append(StageLayout(i + 1, sum(b.units for b in blocks), blocks))
    stages = tuple(stages)
    return Layout(arch, unit, block, depth, stages, equal_depth=(block != "ode"))


def _valid(layout: Layout, strict: bool) -> bool:
    return layout.scheme_blocks() > 0 and not (strict and layout.leftovers)


def cifar_depth(unit: str, n: int) -> int:
    return get_unit(unit).convs * 3 * n + 2


def _nearest_cifar(depth, unit, block, inner, entry, strict) -> str:
    """The valid depths just below and above ``depth`` (searched in a window of units around it, any size)."""
    centre = max(1, (depth - 2) // (3 * get_unit(unit).convs)) if isinstance(depth, int) else 1
    s = units_per_block(block, inner)
    span = 2 * s + 2  # valid depths recur at least every block of units

    def representative(n: int) -> int:  # above 3s + 2 units a stage's validity depends on n mod s only
        return n if n <= 3 * s + 2 else 2 * s + 2 + (n - 2 * s - 2) % s

    ok = [cifar_depth(unit, n) for n in range(max(1, centre - span), centre + span + 1)
          if _valid(_plan("cifar", unit, (representative(n),) * 3, block, inner, entry, strict, 0), strict)]
    below = [d for d in ok if d < depth][-1:]
    above = [d for d in ok if d > depth][:2 if not below else 1]
    return ", ".join(str(d) for d in below + above)


def plan_layout(
    arch: str = "cifar",
    depth: int | None = 56,
    block: str = "euler",
    unit: str | None = None,
    stages=None,
    entry: str = "euler",
    strict: bool = False,
    inner: str | None = None,
) -> Layout:
    """Group a depth's units into blocks of ``block``; raise ConfigError for an impossible request."""
    if arch in FAMILY_PLANNERS:  # transformer: depth counts residual functions (horesnet/models/transformer_layout.py)
        return FAMILY_PLANNERS[arch](depth, block, "alternate", strict, inner, stages, entry, unit)
    check_choice("arch", arch, (*CONV_ARCHS, *FAMILY_PLANNERS))
    check_choice("block", block, list_blocks())
    check_choice("entry", entry, ENTRIES)
    if inner is not None:
        check_choice("inner", inner, list_schemes())
        if block == "ode":
            raise ConfigError("inner= nests a scheme inside the units of a scheme block; block='ode' has none.")
        if get_scheme(inner).kind == "multistep":
            raise ConfigError(f"inner={inner!r} is a multistep scheme; inner= nests one Runge-Kutta step inside each "
                              f"unit, which has no past states to combine. Valid inner schemes: "
                              f"{', '.join(list_schemes('rk'))}.")
    multistep = is_multistep(block)
    if multistep and inner is not None:
        raise ConfigError(f"block={block!r} is a multistep scheme (one unit per step); inner= (a nested scheme in "
                          "every unit) is not supported with it. Drop inner=, or use a Runge-Kutta block.")
    if multistep and entry == "scheme":
        raise ConfigError(f"entry='scheme' puts the stride inside the first unit of a scheme block, but a {block} "
                          "block combines the states of several steps, which must share one shape; use entry=euler "
                          "(the default) with multistep blocks.")
    if unit is not None:
        check_choice("unit", unit, list_units(), PLUGIN_HINT)
    if stages is not None:
        want = 3 if arch == "cifar" else 4
        if isinstance(stages, str | bytes) or not all(isinstance(n, int) and not isinstance(n, bool) for n in stages):
            raise ConfigError(f"stages={stages!r} must list {want} positive integer unit counts for arch={arch!r}.")
        per_stage = tuple(stages)
        if len(per_stage) != want or min(per_stage) < 1:
            raise ConfigError(f"stages={list(stages)!r} must list {want} positive unit counts for arch={arch!r}.")
        unit = unit or ("basic" if arch == "cifar" else "bottleneck")
        depth = sum(per_stage) * get_unit(unit).convs + 2
    elif arch == "imagenet":
        if depth not in IMAGENET_STAGES:
            raise ConfigError(f"impossible depth {depth!r} for arch='imagenet'; valid depths: "
                              f"{', '.join(map(str, IMAGENET_STAGES))} (or give stages=[...]).")
        table_unit, per_stage = IMAGENET_STAGES[depth]
        if unit not in (None, table_unit):
            raise ConfigError(f"ImageNet ResNet-{depth} uses unit={table_unit!r}, not {unit!r} "
                              "(give stages=[...] to build another combination).")
        unit = table_unit
    else:
        unit = unit or "basic"
        k = 3 * get_unit(unit).convs
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < k + 2 or (depth - 2) % k:
            near = _nearest_cifar(depth if isinstance(depth, int) else 0, unit, block, inner, entry, strict)
            raise ConfigError(f"impossible depth {depth!r} for unit={unit!r}: CIFAR depth is {k}n+2 "
                              f"(n units per stage). Nearest valid depths for block={block!r}: {near}.")
        per_stage = ((depth - 2) // k,) * 3
    layout = _plan(arch, unit, per_stage, block, inner, entry, strict, depth)
    if not _valid(layout, False):
        s = units_per_block(block, inner)
        need = s + 1 if entry == "euler" else s
        hint = (f" Nearest valid depths: {_nearest_cifar(depth, unit, block, inner, entry, strict)}."
                if arch == "cifar" and stages is None else " Give more units per stage with stages=[...].")
        raise ConfigError(f"block={block!r} holds {s} units, so a stage needs at least {need} units "
                          f"(entry={entry!r}); depth {depth} gives {list(per_stage)} units per stage and "
                          f"would hold no {block} block at all.{hint}")
    if strict and layout.leftovers:
        hint = (f" Nearest valid depths: {_nearest_cifar(depth, unit, block, inner, entry, True)}."
                if arch == "cifar" and stages is None else "")
        raise ConfigError(f"strict=true: depth {depth} leaves {layout.leftovers} unit(s) that do not fill a "
                          f"{block} block of {units_per_block(block, inner)} units.{hint}")
    return layout
