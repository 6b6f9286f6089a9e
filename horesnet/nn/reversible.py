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

Cost: the forward once without a graph, then per unit one recomputation with autograd on and one
``torch.autograd.grad`` (the minimum of this scheme: about 1.33 times an autograd step). Around that the backward
does little: one walk over the units' modules per forward (their trained parameters and BatchNorms), the rebuild
written into its own temporary (x_{n+1} − z into z, divided in place) and the adjoints accumulated in place
(``_Sums``); no host reads but the checking passes'. benchmarks/multistep.py measures it (docs/multistep.md).

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
def _frozen_statistics(norms):
    """``norms`` (BatchNorms that track running statistics) with ``track_running_stats`` off: batch statistics in
    training, running ones in eval, no buffer update either way."""
    for m in norms:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in norms:
            m.track_running_stats = True


def _walk(block):
    """One walk over the stage's units: per unit the parameters that need gradients (each once), the stage's (each
    once: a module shared by two units counts once) and the BatchNorms that track running statistics."""
    per_unit, norms = [], []
    for unit in block.units:
        params = {}
        for m in unit.modules():
            if isinstance(m, _BatchNorm) and m.track_running_stats:
                norms.append(m)
            for p in m._parameters.values():
                if p is not None and p.requires_grad:
                    params[p] = None
        per_unit.append(list(params))
    return per_unit, list(dict.fromkeys(p for ps in per_unit for p in ps)), norms


def _autocast_state() -> list[tuple[str, bool, torch.dtype]]:
    return [(d, torch.is_autocast_enabled(d), torch.get_autocast_dtype(d)) for d in ("cpu", "cuda")]


def _reduce(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``t`` summed down to the shape of the coefficient ``like`` (a scalar or one value per channel)."""
    return t.sum() if like.dim() == 0 else t.sum_to_size(like.shape)


class _Sums:
    """Adjoints ``a[m]`` accumulated as ``a[m] += c·t`` (``c`` a float or an index into the coefficient tensors),
    in place once ``a[m]`` is a tensor of our own (not ``grad_out`` nor a tensor autograd handed back) of the same
    dtype; otherwise out of place, with the type promotion of ``a + c·t``. ``c·t`` is rounded on its own, as in
    autograd's backward of the forward's sum, so that the gradients follow autograd's roundings."""

    def __init__(self, size: int, coefficients):
        self.a, self.own, self.coefficients = [None] * size, [False] * size, coefficients

    def add(self, m: int, t: torch.Tensor, c=1.0) -> None:
        a = self.a[m]
        one = isinstance(c, float) and c == 1.0  # (an int c is an index)
        if one and a is None:
            self.a[m], self.own[m] = t, False
            return
        tc = t if one else t * (c if isinstance(c, float) else self.coefficients[c])  # c·t rounded, as autograd's
        if a is None:
            self.a[m], self.own[m] = tc, tc is not t
        elif self.own[m] and a.dtype == tc.dtype:
            a.add_(tc)
        else:
            self.a[m], self.own[m] = a + tc, True

    def pop(self, m: int) -> torch.Tensor | None:
        a, self.a[m] = self.a[m], None
        return a


class ReversibleStage(torch.autograd.Function):
    """``x_T`` of a multistep stage from ``x0``; saves the k newest states only (module docstring)."""

    @staticmethod
    def forward(ctx, block, table, walk, n_coef, x0, *tensors):
        coefficients = tensors[:n_coef]
        T = len(table)
        window = min(block.history, T + 1)
        with torch.no_grad():
            states = run_steps(block, x0, table, coefficients, window=window)
        ctx.block, ctx.table, ctx.walk, ctx.n_coef, ctx.window = block, table, walk, n_coef, window
        ctx.autocast, ctx.check = _autocast_state(), block.checking
        ctx.save_for_backward(x0, *states, *coefficients)  # x0: one more state, to measure and correct the rebuild
        return states[-1]

    @staticmethod
    def backward(ctx, grad_out):
        block, table, n_coef, window = ctx.block, ctx.table, ctx.n_coef, ctx.window
        params, trained, norms = ctx.walk
        x0, *saved = ctx.saved_tensors
        coefficients = saved[window:]
        T = len(table)
        xs = [None] * (T + 1)
        xs[T + 1 - window:] = saved[:window]
        g, gF = _Sums(T + 1, coefficients), _Sums(T, coefficients)  # adjoints of the states and unit outputs
        g.a[T] = grad_out
        gcoef: list[torch.Tensor | None] = [None] * n_coef
        gparam: dict[int, torch.Tensor] = {}
        recomputed: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * T  # (input leaf, output), autograd on

        def unit_out(m: int) -> torch.Tensor:
            if recomputed[m] is None:
                x = xs[m].detach().requires_grad_(True)
                recomputed[m] = (x, block.units[m](x))
            return recomputed[m][1]

        with contextlib.ExitStack() as stack:
            for device, enabled, dtype in ctx.autocast:
                if torch.is_autocast_enabled(device) != enabled:
                    stack.enter_context(torch.autocast(device, dtype=dtype, enabled=enabled))
            stack.enter_context(_frozen_statistics(norms))
            stack.enter_context(torch.enable_grad())
            for n in reversed(range(T)):
                xterms, fterms = table[n]
                oldest, c_old = max(xterms)
                if xs[n - oldest] is None:  # a full step: solve it for its oldest state
                    outs = [(unit_out(n - j).detach(), c) for j, c in fterms]
                    with torch.no_grad():
                        rest = [(xs[n - j], c) for j, c in xterms if j != oldest] + outs
                        z, fresh = combine_terms(rest, coefficients)
                        new = xs[n + 1]
                        if fresh and z.dtype == new.dtype:  # x_{n+1} - z, into z
                            x_old = torch.sub(new, z, out=z)
                        else:
                            x_old = new - z
                        xs[n - oldest] = (x_old.div_(c_old) if isinstance(c_old, float)
                                          else x_old / coefficients[c_old])
                        if n - oldest == 0:  # the stage input: measure the rebuild, then use the true one
                            if ctx.check:
                                error = ((xs[0] - x0).norm() / x0.norm().clamp_min(1e-30)).item()
                                block.warn_reconstruction(error, x0.dtype)
                            xs[0] = x0
                gn1 = g.pop(n + 1)
                for j, c in xterms:
                    g.add(n - j, gn1, c)
                    if not isinstance(c, float):
                        gcoef[c] = _add(gcoef[c], _reduce(gn1 * xs[n - j], coefficients[c]))
                for j, c in fterms:
                    gF.add(n - j, gn1, c)
                    if not isinstance(c, float):
                        gcoef[c] = _add(gcoef[c], _reduce(gn1 * unit_out(n - j).detach(), coefficients[c]))
                del gn1
                if gF.a[n] is not None:  # every step using F_n is done: the vector-Jacobian product of unit n
                    out = unit_out(n)
                    x_leaf, _ = recomputed[n]
                    grads = torch.autograd.grad(out, (x_leaf, *params[n]), gF.pop(n), allow_unused=True)
                    if grads[0] is not None:
                        g.add(n, grads[0])
                    for p, gp in zip(params[n], grads[1:], strict=True):
                        if gp is not None:
                            gparam[id(p)] = _add(gparam.get(id(p)), gp)
                recomputed[n] = None
                xs[n + 1] = None
        return (None, None, None, None, g.a[0], *gcoef, *(gparam.get(id(p)) for p in trained))


def _add(a, b):
    return b if a is None else a + b


def reversible_stage(block, x0, table, coefficients):
    """Run ``block`` (a :class:`~horesnet.nn.multistep.MultistepBlock`) on ``x0`` keeping only its final states."""
    walk = _walk(block)
    return ReversibleStage.apply(block, table, walk, len(coefficients), x0, *coefficients, *walk[1])
