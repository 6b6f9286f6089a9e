"""``python -m horesnet.info arch=transformer ...``: what a Transformer stack holds and costs."""

from __future__ import annotations

import torch
from torch import nn

from ..nn.transformer import AttentionUnit
from ..schemes import get_scheme
from .complexity import count_params
from .scale import control_step, residual_scale


@torch.no_grad()
def count_sequence_macs(model) -> int:
    """Multiply-adds of one forward pass of one sequence of ``context`` tokens: every linear layer per token it
    maps, and the two attention products (2 T^2 d) per attention evaluation; units evaluated per evaluation."""
    total = 0

    def linear(m, inputs, out):
        nonlocal total
        total += out.numel() // m.out_features * m.in_features * m.out_features

    def attention(m, inputs, out):
        nonlocal total
        t, d = out.shape[1], out.shape[2]
        total += 2 * t * t * d

    handles = [m.register_forward_hook(linear) for m in model.modules() if isinstance(m, nn.Linear)]
    handles += [m.register_forward_hook(attention) for m in model.modules() if isinstance(m, AttentionUnit)]
    tokens = model.context - (model.cls_token is not None)
    if isinstance(model.embed, nn.Embedding):
        x = torch.zeros(1, tokens, dtype=torch.long)
    else:
        x = torch.zeros(1, tokens, model.embed.in_features)
    was = model.training
    try:
        model.eval()
        model(x)
    finally:
        model.train(was)
        for h in handles:
            h.remove()
    return total


def transformer_report(model, version: str) -> str:
    layout, c = model.layout, model.config

    t = get_scheme(layout.block)
    macs = count_sequence_macs(model)
    scale = residual_scale(model)
    kind = (f"multistep, {t.k} states per step" if t.kind == "multistep" else
            f"{t.increments} increment(s) per block")
    control = ("" if abs(scale["mean"] - 1.0) < 1e-12 else
               f"; its matched Euler control: block=euler step={control_step(scale['mean']):g} (the same options "
               "otherwise, as compare names it)")
    return "\n".join([
        f"horesnet {version}: transformer ({'causal decoder' if model.causal else 'encoder'}), depth {layout.depth} "
        f"residual functions, block={t.name} ({kind}, computed order {t.order})",
        f"layout={layout.layout}, d_model={c['d_model']}, heads={c['heads']}, mlp_ratio={c['mlp_ratio']}, "
        f"context={model.context}, step={c['step']}{' (learnable)' if c['learn_step'] else ''}",
        "",
        layout.describe(),
        "",
        f"residual scale (mean over units of h*b_i, docs/design.md): {scale['mean']:.4g}{control}",
        f"parameters: {count_params(model):,}",
        f"multiply-adds per sequence of {model.context} tokens: {macs:,} ({macs / 1e9:.3f} G)",
    ])
