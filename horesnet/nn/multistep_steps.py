"""The two loops every multistep stage runs, shared by the plain forward (horesnet/nn/multistep.py) and the reversible
backward (horesnet/nn/reversible.py), so that neither imports the other: ``combine_terms`` sums coefficient-weighted
terms, ``run_steps`` runs the recurrence of docs/multistep.md over a stage's units.

A step's sum is formed with as few elementwise passes as its coefficients allow (the extra cost of a multistep
scheme over Euler's single addition, benchmarks/multistep.py): a step whose two states have coefficients summing to 1
(LM-ResNet's (1−k, k), Momentum ResNet's (1+γ, −γ)) is ``torch.lerp(x_n, x_{n−1}, α_1)`` -- one pass forward, and for
a learned α_1 one product and reduction backward instead of two -- and every further term is accumulated into our
own temporary in one pass (``add_(t, alpha=c)`` for a float c, ``addcmul_(t, c)`` for a tensor c). Which steps are
such a pair is decided once per table (:class:`StepTable`), not per forward."""

from __future__ import annotations

import torch
from torch import nn

# Two float coefficients summing to 1 within this are a lerp pair: 1 − α_1 then differs from α_0 by rounding only.
_PAIR_TOLERANCE = 4 * 2.0 ** -52


def _lerp_weight(xterms, complements):
    """The weight w of step ``x_n·(1−w) + x_{n−1}·w`` when ``xterms`` is such a pair (None: it is not)."""
    if len(xterms) != 2:
        return None
    (j0, c0), (j1, c1) = sorted(xterms)
    if (j0, j1) != (0, 1):
        return None
    if isinstance(c0, float) and isinstance(c1, float):
        return c1 if abs(c0 + c1 - 1.0) <= _PAIR_TOLERANCE else None
    if not isinstance(c0, float) and not isinstance(c1, float) and complements.get(c0) == c1:
        return c1
    return None


class StepTable(tuple):
    """A stage's table (one ``(state_terms, unit_terms)`` pair per step, a plain tuple to every reader) that also
    knows which pairs of coefficient tensors sum to 1 by construction (``complements``: ``{index of α_0: index of
    α_1}``) and holds its per-step plans ``(w, xterms, fterms)``: w the lerp weight of x_n and x_{n−1} (None: the
    state terms are summed term by term), computed once with the table (cached with it where its structure is)."""

    def __new__(cls, steps, complements=None):
        table = super().__new__(cls, steps)
        table.complements = dict(complements or {})
        table.plans = tuple((_lerp_weight(xterms, table.complements), xterms, fterms) for xterms, fterms in table)
        return table


def _accumulate(out, fresh, t, c, coefficients):
    """``out + c·t`` (``out`` None: ``c·t``); in place when ``out`` is our own temporary (``fresh``)."""
    if isinstance(c, float):
        if out is None:
            return (t, False) if c == 1.0 else (t * c, True)
        if fresh:
            return out.add_(t, alpha=c), True  # our own temporary; add needs no saved inputs
        return torch.add(out, t, alpha=c), True
    coefficient = coefficients[c]
    if out is None:
        return t * coefficient, True
    if fresh:
        return out.addcmul_(t, coefficient), True  # one pass for c·t and the sum
    return torch.addcmul(out, t, coefficient), True


def combine_terms(terms, coefficients) -> tuple[torch.Tensor, bool]:
    """``Σ c·t`` over ``terms = [(t, c), ...]`` (``c`` a float or an index into ``coefficients``); returns the sum and
    whether it is a new tensor (False: it is one of the ``t`` itself)."""
    out, fresh = None, False
    for t, c in terms:
        out, fresh = _accumulate(out, fresh, t, c, coefficients)
    return out, fresh


def _combine_step(plan, n, xs, fs, coefficients):
    w, xterms, fterms = plan
    out, fresh = None, False
    if w is not None and not isinstance(w, float):
        w = coefficients[w]
        if isinstance(w, torch.fx.Proxy) or isinstance(xs[n], torch.fx.Proxy):  # traced: as eager runs it
            w = w.to(xs[n].dtype)
        elif w.dtype != xs[n].dtype:  # a weight of another dtype (lerp needs one; e.g. under autocast): term by term
            w = None
    if w is not None:
        out, fresh = torch.lerp(xs[n], xs[n - 1], w), True
    else:
        for j, c in xterms:
            out, fresh = _accumulate(out, fresh, xs[n - j], c, coefficients)
    for j, c in fterms:
        f = fs[n - j]
        if f is not None:
            out, fresh = _accumulate(out, fresh, f, c, coefficients)
    return out, fresh


def run_steps(block, x0, table, coefficients, window: int = 0):
    """The forward loop of ``block`` (a ``MultistepBlock``); returns x_T, or with ``window`` > 0 the ``window``
    newest states (oldest first)."""
    units, posts, hook = block.units, block.posts, block.hook
    T, keep = len(table), block.history
    xs, fs = [x0] + [None] * T, [None] * T
    drop_until = T + 1 - max(window, 1)
    for n, plan in enumerate(table.plans):
        base = xs[n]
        if hook is not None:
            got = hook(block, n, base, fs)
            base = None if got is None else got[0]
        if base is not None:
            fs[n] = units[n](base)
        z, fresh = _combine_step(plan, n, xs, fs, coefficients)
        post = posts[n]
        if not fresh and not isinstance(post, nn.Identity):
            z = z.clone()  # every term but one state switched off: never let an in-place post touch that state
        xs[n + 1] = post(z)
        if keep and 0 <= n + 1 - keep < drop_until:
            xs[n + 1 - keep] = None  # no later step uses it
            fs[n + 1 - keep] = None
    return xs[T] if not window else xs[T + 1 - window:]
