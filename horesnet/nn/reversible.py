"""Memory-free training of an invertible multistep stage (docs/multistep.md, "Reversible training").

Momentum ResNets (Sander et al., ICML 2021) observed that x_{n+1} = (1+γ) x_n − γ x_{n−1} + (1−γ) F(x_n) can be
solved for its oldest state, x_{n−1} = (x_{n+1} − (1+γ) x_n − (1−γ) F(x_n)) / (−γ), so the states of a stage can be
recomputed backwards from its last two and nothing else needs keeping for backward. In general a step whose oldest
state x_{n−k+1} has a coefficient α_{k−1} != 0 and is not evaluated (β_{k−1} = 0) gives

    x_{n−k+1} = (x_{n+1} − Σ_{j<k−1} α_j x_{n−j} − h Σ_j β_j F_{n−j}) / α_{k−1}

(momentum, LM-ResNet, leapfrog). :class:`ReversibleStage` runs the stage's forward loop without autograd, saves only
its k newest states and its input (and the coefficient tensors), and in backward walks the steps from the last to
the first:
it rebuilds the oldest state of each step, recomputes the unit output it needs with autograd on, and accumulates
the exact adjoint of the recurrence -- ∂L/∂x_{n−j} += α_j ∂L/∂x_{n+1}, ∂L/∂F_{n−j} += h β_j ∂L/∂x_{n+1}, then the
vector-Jacobian product of unit n once every step using F_n is done -- plus the gradients of learned coefficients
(Σ over the batch of ∂L/∂x_{n+1} times the term they multiply) and of every unit parameter. The saved memory is
that of k + 1 states per stage, whatever its depth. The rebuilt stage input is compared with the true one on the
first pass and every 200th (``MultistepBlock.last_reconstruction_error``; a warning above 1e-3) and then
replaced by it.

Where Sander et al.'s reference implementation (momentumnet 0.10) is not exact, this one is:

- the carried states stay in the working dtype (never cast to float32) and γ (any coefficient) is used exactly as
  given, so in float64 the gradients equal autograd's to rounding (tests: relative error <= 1e-10);
- BatchNorm running statistics are updated once per step, by the forward pass: the recomputation runs every
  ``_BatchNorm`` of the stage with ``track_running_stats`` off, which in training mode normalises with the batch
  statistics of its input -- the reconstructed forward input -- and updates nothing (``num_batches_tracked`` and the
  running mean/variance stay as the forward left them); in eval mode it uses the running statistics, as the forward;
- autocast is re-entered in backward as it was in the forward.

Limits: the units must be deterministic (no dropout; drop-path is refused with multistep blocks), and the error of
the reconstruction grows by the scheme's ``inversion_growth`` per unit (1/γ for momentum, 1/|k| for LM-ResNet) and
more through the units' Jacobians: the network factory refuses a stage whose predicted error exceeds 1e-5 in
float32 unless asked (``reversible_unsafe=true``), and the measured error of the rebuilt input warns.
"""

from __future__ import annotations

import contextlib

import torch
from torch.nn.modules.batchnorm import _BatchNorm

from .multistep_steps import combine_terms, run_steps


@contextlib.contextmanager
def _frozen_statistics(modules):
    """Every BatchNorm of ``modules`` with ``track_running_stats`` off: batch statistics in training, running ones
    in eval, no buffer update either way."""
    norms = [m for m in modules if isinstance(m, _BatchNorm) and m.track_running_stats]
    for m in norms:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in norms:
            m.track_running_stats = True


def _autocast_state() -> list[tuple[str, bool, torch.dtype]]:
    return [(d, torch.is_autocast_enabled(d), torch.get_autocast_dtype(d)) for d in ("cpu", "cuda")]


def _reduce(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``t`` summed down to the shape of the coefficient ``like`` (a scalar or one value per channel)."""
    return t.sum() if like.dim() == 0 else t.sum_to_size(like.shape)


def _scaled(g: torch.Tensor, c, coefficients) -> torch.Tensor:
    if isinstance(c, float):
        return g if c == 1.0 else g * c
    return g * coefficients[c]


def _add(a, b):
    return b if a is None else a + b


class ReversibleStage(torch.autograd.Function):
    """``x_T`` of a multistep stage from ``x0``; saves the k newest states only (module docstring)."""

    @staticmethod
    def forward(ctx, block, table, n_coef, x0, *tensors):
        coefficients = tensors[:n_coef]
        T = len(table)
        window = min(block.history, T + 1)
        with torch.no_grad():
            states = run_steps(block, x0, table, coefficients, window=window)
        ctx.block, ctx.table, ctx.n_coef, ctx.window = block, table, n_coef, window
        ctx.autocast, ctx.check = _autocast_state(), block.checking
        ctx.save_for_backward(x0, *states, *coefficients)  # x0: one more state, to measure and correct the rebuild
        return states[-1]

    @staticmethod
    def backward(ctx, grad_out):
        block, table, n_coef, window = ctx.block, ctx.table, ctx.n_coef, ctx.window
        x0, *saved = ctx.saved_tensors
        coefficients = saved[window:]
        T = len(table)
        xs = {T - window + 1 + i: t for i, t in enumerate(saved[:window])}
        params = [[p for p in u.parameters() if p.requires_grad] for u in block.units]
        g = {T: grad_out}
        gF: dict[int, torch.Tensor] = {}
        gcoef: list[torch.Tensor | None] = [None] * n_coef
        gparam: dict[int, torch.Tensor] = {}
        recomputed: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

        def unit_out(m: int):
            if m not in recomputed:
                x = xs[m].detach().requires_grad_(True)
                recomputed[m] = (x, block.units[m](x))
            return recomputed[m][1]

        with contextlib.ExitStack() as stack:
            for device, enabled, dtype in ctx.autocast:
                if torch.is_autocast_enabled(device) != enabled:
                    stack.enter_context(torch.autocast(device, dtype=dtype, enabled=enabled))
            stack.enter_context(_frozen_statistics(block.units.modules()))
            stack.enter_context(torch.enable_grad())
            for n in reversed(range(T)):
                xterms, fterms = table[n]
                oldest, c_old = max(xterms)
                if n - oldest not in xs:  # a full step: solve it for its oldest state
                    outs = [(unit_out(n - j).detach(), c) for j, c in fterms]  # recomputed with autograd on
                    with torch.no_grad():
                        rest = [(xs[n - j], c) for j, c in xterms if j != oldest] + outs
                        z, _ = combine_terms(rest, coefficients)
                        x_old = xs[n + 1] - z
                        xs[n - oldest] = (x_old / c_old if isinstance(c_old, float)
                                          else x_old / coefficients[c_old])
                        if n - oldest == 0:  # the stage input: measure the rebuild, then use the true one
                            if ctx.check:
                                error = ((xs[0] - x0).norm() / x0.norm().clamp_min(1e-30)).item()
                                block.warn_reconstruction(error, x0.dtype)
                            xs[0] = x0
                gn1 = g.pop(n + 1)
                for j, c in xterms:
                    g[n - j] = _add(g.get(n - j), _scaled(gn1, c, coefficients))
                    if not isinstance(c, float):
                        gcoef[c] = _add(gcoef[c], _reduce(gn1 * xs[n - j], coefficients[c]))
                for j, c in fterms:
                    gF[n - j] = _add(gF.get(n - j), _scaled(gn1, c, coefficients))
                    if not isinstance(c, float):
                        gcoef[c] = _add(gcoef[c], _reduce(gn1 * unit_out(n - j).detach(), coefficients[c]))
                if n in gF:  # every step using F_n is done: the vector-Jacobian product of unit n
                    out = unit_out(n)
                    x_leaf, _ = recomputed.pop(n)
                    grads = torch.autograd.grad(out, (x_leaf, *params[n]), gF.pop(n), allow_unused=True)
                    if grads[0] is not None:
                        g[n] = _add(g.get(n), grads[0])
                    for p, gp in zip(params[n], grads[1:], strict=True):
                        if gp is not None:
                            gparam[id(p)] = _add(gparam.get(id(p)), gp)
                else:
                    recomputed.pop(n, None)
                xs.pop(n + 1, None)
        return (None, None, None, g.get(0), *gcoef, *(gparam.get(id(p)) for p in _trained(block)))


def _trained(block) -> list[torch.Tensor]:
    """The units' parameters that need gradients, each once (a module shared by two units counts once)."""
    return list(dict.fromkeys(p for u in block.units for p in u.parameters() if p.requires_grad))


def reversible_stage(block, x0, table, coefficients):
    """Run ``block`` (a :class:`~horesnet.nn.multistep.MultistepBlock`) on ``x0`` keeping only its final states."""
    return ReversibleStage.apply(block, table, len(coefficients), x0, *coefficients, *_trained(block))
