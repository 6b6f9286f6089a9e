"""Multistep stages in the network factory (docs/multistep.md, "Networks"): the options that only they take, what
they refuse by name, their blocks, and the inversion-safety check of ``reversible=true``."""

from __future__ import annotations

import math
import warnings

from torch import nn

from ..errors import ConfigError
from ..nn.multistep import REVERSIBLE_TOLERANCE, MultistepBlock
from ..nn.placements import get_placement, list_placements
from ..schemes import get_scheme, list_schemes
from ..schemes.stage import FLOAT32_EPS, inversion_error
from .layout import cifar_depth, is_multistep

# options of build_model that only a multistep block takes, with their defaults
MULTISTEP_OPTIONS = {"coefficient": None, "learn_coefficients": None, "coefficient_per_channel": False,
                     "reversible": False, "reversible_unsafe": False}


def invertible_schemes() -> list[str]:
    return [n for n in list_schemes("multistep") if get_scheme(n).invertible]


def check_options(c) -> None:
    """Refuse, by name, what a multistep block cannot do and the multistep options given to another block."""
    block = c.block
    if not is_multistep(block):
        given = {k: getattr(c, k) for k, v in MULTISTEP_OPTIONS.items() if getattr(c, k) != v}
        if given.get("reversible"):
            raise ConfigError(f"reversible=true trains by inverting a multistep recurrence; block={block!r} cannot be "
                              "inverted (a Runge-Kutta step or an ODE solve is not solvable for its input without an "
                              f"implicit solve). Invertible blocks: {', '.join(invertible_schemes())}.")
        if given:
            key = next(iter(given))
            raise ConfigError(f"{key}={given[key]!r} applies to multistep blocks only "
                              f"({', '.join(list_schemes('multistep'))}); block={block!r} is not one.")
        return
    if c.tied:
        raise ConfigError(f"tied=true shares one unit across a block's increments; a {block} block has one unit per "
                          "step and is not supported with it. Drop tied=.")
    if c.drop_path_rate > 0:
        raise ConfigError(f"drop_path_rate={c.drop_path_rate:g} is not supported with multistep blocks "
                          f"(block={block!r}): a dropped unit output would enter several later steps. Use "
                          "drop_path_rate=0.")
    if str(c.shortcut).upper() == "C":
        raise ConfigError(f"shortcut='C' puts a projection on every block's skip; a {block} block's skips are its "
                          "state coefficients (identities), so only the entry blocks have shortcuts: use A or B.")
    if c.reversible and not get_scheme(block).invertible:
        s = get_scheme(block)
        why = ("it combines every past state of the stage" if s.history == "stage" else
               f"its oldest state x_(n-{s.k - 1}) has alpha = {s.alpha[-1]:g}" + (
                   f" and beta = {s.beta[-1]:g}" if s.beta[-1] else ""))
        raise ConfigError(f"reversible=true: block={block!r} cannot be inverted ({why}, so a step cannot be solved for "
                          "its oldest state); reversible training needs an invertible multistep block: "
                          f"{', '.join(invertible_schemes())}.")
    post = get_placement(c.placement).post
    if c.reversible and post:
        free = [p for p in list_placements() if not get_placement(p).post]
        raise ConfigError(f"reversible=true: placement={c.placement!r} applies {'-'.join(post)} after each addition, "
                          f"which cannot be inverted; use a placement without one: {', '.join(free)}.")
    if c.reversible_unsafe and not c.reversible:
        raise ConfigError("reversible_unsafe=true only accepts an unsafe reversible=true; add reversible=true or drop "
                          "reversible_unsafe=.")


def make_block(scheme_name: str, units: list[nn.Module], posts: list[nn.Module], step: float, c) -> MultistepBlock:
    """A multistep block of ``units`` (one per step) with step ``step`` and the other options of the ModelConfig
    ``c``."""
    try:
        return MultistepBlock(get_scheme(scheme_name), units, posts, step, c.learn_step, c.learn_coefficients,
                              c.coefficient_per_channel, c.coefficient, c.reversible)
    except ConfigError as err:
        raise ConfigError(f"block={scheme_name}: {err}") from None


def _safe_coefficient(block: MultistepBlock, family, T: int) -> str | None:
    """For a two-step family with the root 1 (momentum's γ, LM's k: roots 1 and r = −α_1(θ)), the bound on θ, on
    the side of its current value, from which a stage of T units is predicted safe: found by bisection on θ between
    the current value and the end of the zero-stable interval (the error falls as |r| grows), rounded outwards to 3
    significant digits (per channel: the side of the worst channel, a bound for every channel). None for another
    family."""
    if family.kind != "affine" or block.scheme.k != 2 or not block.scheme.preconsistent:
        return None

    def error(theta):
        r = -(family.alpha0[1] + theta * family.dalpha[1])
        return inversion_error(None if r == 0 else (1.0, r), T, FLOAT32_EPS)

    values = block.coefficients.values().get(family.name, family.init)
    current = max(values if isinstance(values, list) else [values], key=error)
    lo, hi, lo_in, hi_in = family.zero_stable_range
    side = 1.0 if current > 0 else -1.0
    end = hi if side > 0 else lo
    if not (hi_in if side > 0 else lo_in):
        end -= side * 1e-9
    if error(end) > REVERSIBLE_TOLERANCE:
        return f"no {family.name} is safe at {T} units"
    unsafe, safe = float(current), end
    for _ in range(80):
        mid = (unsafe + safe) / 2
        unsafe, safe = (unsafe, mid) if error(mid) <= REVERSIBLE_TOLERANCE else (mid, safe)
    scale = 10 ** (math.floor(math.log10(abs(safe))) - 2)
    bound = (math.ceil if side > 0 else math.floor)(safe / scale) * scale  # outwards: still safe
    if (side > 0 and bound > end) or (side < 0 and bound < end):
        bound = safe
    return f"{family.name} {'>=' if side > 0 else '<='} {bound:.3g} (coefficient=)"


def check_reversible(model, c) -> None:
    """Refuse (or, with ``reversible_unsafe``, warn about) a reversible stage whose predicted reconstruction error in
    float32 (:func:`horesnet.schemes.stage.inversion_error`, every root of ρ) exceeds ``REVERSIBLE_TOLERANCE``
    (1e-4); the message names the safe depth and, for momentum and LM, the safe coefficient."""
    if not c.reversible:
        return
    for address, block, _ in model.blocks():
        if not isinstance(block, MultistepBlock):
            continue
        error = block.predicted_inversion_error(FLOAT32_EPS)
        if error <= REVERSIBLE_TOLERANCE:
            continue
        T, growth = len(block.units), block.coefficients.inversion_growth()
        safe = block.coefficients.safe_inversion_depth(REVERSIBLE_TOLERANCE, FLOAT32_EPS)
        where = f"{T} units per stage after the entry block"
        hint = [f"at most {safe} units per stage (stages=[{safe + 1}, ...])"]
        if c.arch == "cifar" and c.stages is None and safe >= 1:
            units = f"{safe} unit{'s' if safe > 1 else ''}"
            hint = [f"depth <= {cifar_depth(model.layout.unit, safe + 1)} ({units} per stage)"]
        family = block.coefficients.family or (block.scheme.learnable[0] if block.scheme.learnable else None)
        if family is not None:
            bound = _safe_coefficient(block, family, T)
            hint += [bound] if bound else []
        text = (f"reversible=true: block={c.block} at {address} has {where}; inverting them accumulates float32 "
                f"rounding errors through every root of rho (growth {growth:.4g} per unit from its smallest), a "
                f"predicted relative reconstruction error of {error:.3g} (eps = 2^-24), above the tolerance "
                f"{REVERSIBLE_TOLERANCE:g}: its gradients would be wrong. Safe: {' or '.join(hint)}.")
        if not c.reversible_unsafe:
            raise ConfigError(text + " Pass reversible_unsafe=true to train anyway.")
        warnings.warn(text + " Training anyway (reversible_unsafe=true).", UserWarning, stacklevel=3)
        return
