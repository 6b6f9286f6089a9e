"""Activation checkpointing of one block (Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost").

The block's inner activations are not kept for backward; they are recomputed from its input when backward needs
them. Gradients equal the plain model's. Recomputing a block in training mode would update its BatchNorm running
statistics (and an ODE block's function-evaluation count) a second time, so the recomputation runs inside a
context that restores them afterwards: a checkpointed network's buffers equal the plain network's too. Random
draws (drop-path masks) are replayed from the saved RNG state.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .ode import ODEBlock


@contextmanager
def _buffers_restored(module: nn.Module):
    """On exit, put back every buffer (BN running statistics) and ODE counter of ``module`` as it was on entry."""
    saved = [(b, b.detach().clone()) for b in module.buffers()]
    counters = [(m, m.nfe, m.nfe_total, m.func.nfe) for m in module.modules() if isinstance(m, ODEBlock)]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)
        for m, nfe, total, func_nfe in counters:
            m.nfe, m.nfe_total, m.func.nfe = nfe, total, func_nfe


def checkpointed(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``block(x)`` keeping only ``x`` for backward (non-reentrant checkpoint; buffers not updated twice).

    Inside ``torch.compile`` the checkpoint is a region of the traced graph: AOT autograd recomputes only the
    activations backward needs and applies buffer updates once, so nothing needs restoring (dynamo cannot trace a
    custom ``context_fn``)."""
    if torch.compiler.is_compiling():
        return checkpoint(block, x, use_reentrant=False)
    return checkpoint(block, x, use_reentrant=False,
                      context_fn=lambda: (nullcontext(), _buffers_restored(block)))
