"""The multistep lines of ``python -m horesnet.info block=momentum depth=56`` (docs/multistep.md)."""

from __future__ import annotations

from ..nn.multistep import REVERSIBLE_TOLERANCE, MultistepBlock
from ..schemes import get_scheme
from ..schemes.stage import FLOAT32_EPS


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
