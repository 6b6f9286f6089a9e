"""The two loops every multistep stage runs, shared by the plain forward (horesnet/nn/multistep.py) and the reversible
backward (horesnet/nn/reversible.py), so that neither imports the other: ``combine_terms`` sums coefficient-weighted
terms, ``run_steps`` runs the recurrence of docs/multistep.md over a stage's units."""

from __future__ import annotations

import torch
from torch import nn


def combine_terms(terms, coefficients) -> tuple[torch.Tensor, bool]:
    """``Σ c·t`` over ``terms = [(t, c), ...]`` (``c`` a float or an index into ``coefficients``); returns the sum and
    whether it is a new tensor (False: it is one of the ``t`` itself)."""
    out, fresh = None, False
    for t, c in terms:
        if isinstance(c, float):
            if out is None:
                out, fresh = (t, False) if c == 1.0 else (t * c, True)
            elif fresh:
                out = out.add_(t, alpha=c)  # our own temporary; add needs no saved inputs
            else:
                out, fresh = out.add(t, alpha=c), True
        else:
            tc = t * coefficients[c]
            if out is None:
                out, fresh = tc, True
            elif fresh:
                out = out.add_(tc)
            else:
                out, fresh = out + tc, True
    return out, fresh


def run_steps(block, x0, table, coefficients, window: int = 0):
    """The forward loop of ``block`` (a ``MultistepBlock``); returns x_T, or with ``window`` > 0 the ``window``
    newest states (oldest first)."""
    units, posts, hook = block.units, block.posts, block.hook
    T, keep = len(table), block.history
    xs, fs = [x0] + [None] * T, [None] * T
    for n, (xterms, fterms) in enumerate(table):
        base = xs[n]
        if hook is not None:
            got = hook(block, n, base, fs)
            base = None if got is None else got[0]
        if base is not None:
            fs[n] = units[n](base)
        terms = [(xs[n - j], c) for j, c in xterms] + [(fs[n - j], c) for j, c in fterms if fs[n - j] is not None]
        z, fresh = combine_terms(terms, coefficients)
        post = posts[n]
        if not fresh and not isinstance(post, nn.Identity):
            z = z.clone()  # every term but one state switched off: never let an in-place post touch that state
        xs[n + 1] = post(z)
        if keep and n + 1 - keep >= 0 and n + 1 - keep < T + 1 - max(window, 1):
            xs[n + 1 - keep] = None  # no later step uses it
            fs[n + 1 - keep] = None
    return xs[T] if not window else xs[T + 1 - window:]
