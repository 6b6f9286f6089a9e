"""``python -m horesnet.info block=rk4 depth=56``: a network's layout, conv layers, parameters, multiply-adds.

``python -m horesnet.info list=schemes`` prints every registered scheme with its computed order; ``list=units``,
``list=placements``, ``list=studies`` and ``list=blocks`` print the other registries. A multistep network's report
adds its blocks' coefficients and reversibility (docs/multistep.md).
"""

from __future__ import annotations

import math

from .. import __version__
from ..errors import ConfigError
from ..models import count_macs, count_params, list_blocks
from ..models.scale import residual_scale
from ..nn import get_placement, get_unit, list_placements, list_units
from ..nn.multistep import REVERSIBLE_TOLERANCE, MultistepBlock
from ..schemes import get_scheme, list_schemes
from ..schemes.stage import FLOAT32_EPS
from ..training.config import model_from_config
from .command import run_command
from .compose import compose


def schemes_table() -> str:
    """Every scheme, Runge-Kutta and multistep, with the common properties of ``summary()`` (docs/multistep.md):
    increments (units per step), computed order, sum(b) (Runge-Kutta), kind, zero stability, effective step,
    inversion growth factor and the mean residual weight of a stage of 8 units. An inconsistent or flagged scheme
    is marked ``!!`` and its warning follows the table."""
    rows = [("scheme", "increments", "order", "sum(b)", "kind", "zero-stable", "h_eff", "growth", "w_mean(8)",
             "description")]
    notes = []
    for name in list_schemes():
        t = get_scheme(name)
        p = t.summary(8)
        flags = [f for f, on in (("INCONSISTENT (sum(b) != 1)" if p["kind"] == "rk" else "INCONSISTENT",
                                  not t.consistent), ("FLAGGED (note below)", bool(t.warning))) if on]
        marker = f"!! {', '.join(flags)}: " if flags else ""
        sum_b = f"{math.fsum(t.b):.6g}" if p["kind"] == "rk" else "-"
        rows.append((name, str(p["units_per_step"]), str(p["order"]), sum_b, p["kind"],
                     "yes" if p["zero_stable"] else "NO", f"{p['effective_step']:.4g}", f"{p['inversion_growth']:.4g}",
                     f"{p['residual_weight_mean']:.3f}", marker + t.description))
        notes += [f"!! {name}: {t.warning}"] if t.warning else []
    return "\n\n".join([_table(rows), *notes,
                         "growth: per-unit growth of the fastest error mode when a stage is inverted, 1/min|root "
                         "of rho| (reversible=true; inf: not invertible; the safety check sums every root's "
                         "modes, docs/multistep.md); w_mean(8): mean residual weight of 8 units (docs/design.md, "
                         "\"Residual scale\").",
                         "block=ode: continuous depth (torchdiffeq odeint per stage), not equal-depth."])


def units_table() -> str:
    def said(value) -> str:
        return "-" if value is None else "yes" if value else "no"

    rows = []
    for name in list_units():
        u = get_unit(name)
        places = u.supported_placements()
        rows.append((name, str(u.convs), str(u.expansion), "all" if places is None else ",".join(places),
                     said(u.zero_init_last), said(u.responses), u.description))
    return _table([("unit", "convs", "expansion", "placements", "zero_init_last", "responses", "description"),
                   *rows])


def placements_table() -> str:
    rows = []
    for name in list_placements():
        p = get_placement(name)
        rows.append((name, "-".join(p.conv), "-".join(p.last), "-".join(p.post) or "-", p.description))
    return _table([("placement", "around a conv", "last conv", "after add", "description"), *rows])


def _table(rows) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1] for r in rows)


def studies_table() -> str:
    from ..analysis import get_study, list_studies

    rows = [(name, ("" if get_study(name).needs_checkpoint else "no checkpoint needed"), get_study(name).description)
            for name in list_studies()]
    return _table([("study", "", "description"), *rows])


# kinds with a table of their own properties; every other registry is listed by registry_table
TABLES = {"schemes": schemes_table, "blocks": lambda: "\n".join(list_blocks()), "units": units_table,
          "placements": placements_table, "studies": studies_table}


def registry_table(plural: str) -> str:
    """Any registry (horesnet.registry.registries(), by its plural name): each name, where it came from (built in,
    or the plugin file) and its description."""
    from .. import analysis, data, models  # noqa: F401 -- their registries exist once imported
    from ..registry import registries

    registry = [r for r in registries() if r.plural == plural][-1]  # the newest, as find_registry
    builtins = set(registry.builtins())
    rows = [(name, "built in" if name in builtins else str(registry.origin(name) or "registered"),
             str(getattr(entry, "description", "") or "")) for name, entry in registry.items()]
    return _table([(registry.kind, "from", "description"), *rows])


def list_table(plural: str) -> str:
    return TABLES[plural]() if plural in TABLES else registry_table(plural)


def _scale_text(model) -> str:
    scale = residual_scale(model)
    if scale is None:
        return "n/a (continuous ODE blocks)"
    return f"{scale['mean']:.4g} (per stage: {', '.join(f'{s:.4g}' for s in scale['per_stage'])})"


ODE_MAX_SIDE = 512


def _macs(model, size, real: bool) -> int:
    """Multiply-adds of one image, counted on the meta device (shapes only: no memory for a huge image_size);
    an ODE block's adaptive solver needs real values, so it runs for real (without autograd)."""
    import torch

    if not real:
        import copy

        try:  # a copy: the report reads the weights' values (residual scale, steps)
            return count_macs(copy.deepcopy(model).to("meta"), size)
        except Exception:  # noqa: BLE001 -- an extension whose forward reads values: count for real below
            pass
    with torch.no_grad():
        return count_macs(model, size)


def model_report(cfg) -> str:
    model = model_from_config(cfg)
    layout = model.layout
    if layout.arch == "transformer":  # horesnet/models/transformer_info.py
        from ..models.transformer_info import transformer_report

        return transformer_report(model, __version__)
    side = cfg.image_size if cfg.image_size is not None else (32 if layout.arch == "cifar" else 224)
    if not isinstance(side, int) or isinstance(side, bool) or side < 1:
        raise ConfigError(f"image_size must be a positive integer (or null for the family default), got {side!r}.")
    if layout.block == "ode" and side > ODE_MAX_SIDE:  # its solver runs for real: memory grows with side**2
        raise ConfigError(f"image_size={side} with block=ode: the multiply-adds of an ODE block are counted by "
                          f"solving it for a real image; valid: image_size <= {ODE_MAX_SIDE} for block=ode "
                          "(multiply-adds grow with image_size**2).")
    size = (cfg.in_channels, side, side)
    params = count_params(model)
    macs = _macs(model, size, layout.block == "ode")
    if layout.block == "ode":
        scheme_line = ("ode (continuous depth: per stage one entry unit + one torchdiffeq odeint of one unit, "
                       "whatever the depth; NOT equal-depth)")
    elif get_scheme(layout.block).kind == "multistep":
        scheme_line = multistep_line(model, cfg)
    else:
        t = get_scheme(layout.block)
        scheme_line = f"{t.name} ({t.increments} increment(s) per block, computed order {t.order})"
        if cfg.inner:
            scheme_line += f" with inner={cfg.inner} units"
    shortcut = model.config["shortcut"]  # null in cfg: the family's default, resolved by build_model
    head = "ResNet" if shortcut != "plain" else "plain net"
    lines = [
        f"horesnet {__version__}: {layout.arch} {head}-{layout.depth}, block={scheme_line}",
        f"unit={layout.unit}, placement={cfg.placement}, shortcut={shortcut}, entry={cfg.entry}, "
        f"tied={cfg.tied}, step={cfg.step}{' (learnable)' if cfg.learn_step else ''}",
        "",
        layout.describe(),
        "  (* entry block: changes resolution/width; ' leftover units grouped as Euler blocks)",
        "",
        f"units per stage: {list(layout.units_per_stage)}, leftover units: {layout.leftovers}, "
        f"{layout.block} blocks: {layout.scheme_blocks()}",
        f"conv layers in units: {layout.conv_layers} ({get_unit(layout.unit).convs} per unit) "
        f"+ stem conv + fc = {layout.conv_layers + 2} weighted layers",
        f"residual scale (mean over units of their first-order weight, h*b_i in a Runge-Kutta block, "
        f"docs/design.md): {_scale_text(model)}",
        f"parameters: {params:,}",
        *multistep_lines(model),
        f"multiply-adds per image ({'x'.join(map(str, size))}): {macs:,} ({macs / 1e9:.3f} G)"
        + (f", at NFE={model.nfe} for a zero input" if layout.block == "ode" else ""),
    ]
    return "\n".join(lines)


def multistep_line(model, cfg) -> str:
    """The scheme part of the report's first line for a multistep network."""
    t = get_scheme(cfg.block)
    learned = [b.coefficients.family.name for _, b, _ in model.blocks()
               if isinstance(b, MultistepBlock) and b.coefficients.family is not None]
    how = f"learned {learned[0]}" if learned else "fixed coefficients"
    return (f"{t.name} (multistep, one unit per step, computed order {t.order}, effective step "
            f"{t.effective_step:.4g}, {how}{', reversible' if cfg.reversible else ''})")


def multistep_lines(model) -> list[str]:
    """Per multistep block: its coefficients now, trainable parameters of its own and, for an invertible scheme,
    the predicted reconstruction error of reversible training in float32."""
    lines = []
    for address, block, _ in model.blocks():
        if not isinstance(block, MultistepBlock):
            continue
        own = sum(p.numel() for p in block.coefficients.parameters())
        values = block.coefficients.values()
        shown = {k: (f"{len(v)} values, mean {sum(v) / len(v):.4g}" if isinstance(v, list) and len(v) > 4
                     else v) for k, v in values.items()}
        fixed = block.scheme.learnable[0] if block.scheme.learnable and block.scheme.learnable[0].kind == "affine" \
            else None
        shown = shown or (f"fixed {fixed.name} = {fixed.init:g}" if fixed else "fixed")
        text = f"  {address}: {len(block.units)} steps, coefficients {shown}"
        text += f" ({own} learned parameter(s), no weight decay)" if own else ""
        if block.scheme.invertible:
            error = block.predicted_inversion_error(FLOAT32_EPS)
            verdict = "safe" if error <= REVERSIBLE_TOLERANCE else "UNSAFE"
            safe = block.coefficients.safe_inversion_depth(REVERSIBLE_TOLERANCE, FLOAT32_EPS)
            text += (f"; reversible: growth {block.coefficients.inversion_growth():.4g}/unit, predicted error "
                     f"{error:.3g} in float32 ({verdict}, tolerance {REVERSIBLE_TOLERANCE:g}, safe up to {safe} "
                     f"units)")
        lines.append(text)
    return ["multistep blocks:", *lines] if lines else []


def main(argv: list[str] | None = None) -> int:
    return run_command("info", argv, _info)


def _info(argv: list[str]) -> int:
    cfg = compose("info", argv)
    print(list_table(cfg.list) if cfg.list is not None else model_report(cfg))
    return 0
