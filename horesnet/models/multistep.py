"""Multistep stages in the network factory (docs/multistep.md, "Networks"): the options that only they take, what
they refuse by name, their blocks, and the inversion-safety check of ``reversible=true``."""

from __future__ import annotations

import warnings

from torch import nn

from ..errors import ConfigError
from ..nn.multistep import REVERSIBLE_TOLERANCE, MultistepBlock
from ..nn.placements import get_placement, list_placements
from ..schemes import get_scheme, list_schemes
from ..schemes.stage import FLOAT32_EPS, safe_depth
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


def make_block(scheme_name: str, units: list[nn.Module], posts: list[nn.Module], step: float, learn_step: bool,
               c) -> MultistepBlock:
    try:
        return MultistepBlock(get_scheme(scheme_name), units, posts, step, learn_step, c.learn_coefficients,
                              c.coefficient_per_channel, c.coefficient, c.reversible)
    except ConfigError as err:
        raise ConfigError(f"block={scheme_name}: {err}") from None


def check_reversible(model, c) -> None:
    """Refuse (or, with ``reversible_unsafe``, warn about) a reversible stage whose predicted reconstruction error in
    float32, eps·growth^T, exceeds the tolerance (1e-3); the message names the safe depth and coefficient."""
    if not c.reversible:
        return
    for address, block, _ in model.blocks():
        if not isinstance(block, MultistepBlock):
            continue
        error = block.predicted_inversion_error(FLOAT32_EPS)
        if error <= REVERSIBLE_TOLERANCE:
            continue
        T, growth = len(block.units), block.coefficients.inversion_growth()
        safe = safe_depth(growth, REVERSIBLE_TOLERANCE, FLOAT32_EPS)
        where = f"{T} units per stage after the entry block"
        hint = [f"at most {safe} units per stage (stages=[{safe + 1}, ...])"]
        if c.arch == "cifar" and c.stages is None and safe >= 1:
            units = f"{safe} unit{'s' if safe > 1 else ''}"
            hint = [f"depth <= {cifar_depth(model.layout.unit, safe + 1)} ({units} per stage)"]
        family = block.coefficients.family or (block.scheme.learnable[0] if block.scheme.learnable else None)
        if family is not None and block.scheme.k == 2:
            need = (FLOAT32_EPS / REVERSIBLE_TOLERANCE) ** (1 / T)
            hint.append(f"|{family.name}| >= {need:.3g} (coefficient=)")
        text = (f"reversible=true: block={c.block} at {address} has {where}; inverting them multiplies a rounding "
                f"error by {growth:.4g} per unit (1/|smallest root of rho|), a predicted relative reconstruction error "
                f"of {error:.3g} in float32 (eps = 2^-24), above the tolerance {REVERSIBLE_TOLERANCE:g}: its "
                f"gradients would be wrong. Safe: {' or '.join(hint)}.")
        if not c.reversible_unsafe:
            raise ConfigError(text + " Pass reversible_unsafe=true to train anyway.")
        warnings.warn(text + " Training anyway (reversible_unsafe=true).", UserWarning, stacklevel=3)
        return
