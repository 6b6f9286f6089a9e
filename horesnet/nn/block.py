"""The one residual block: a step of an explicit Runge-Kutta scheme (docs/design.md, "The block").

    s_x = S(x);  k_1 = F_1(x);  k_i = F_i(s_x + h sum_{j<i} A[i,j] k_j);  y = post(s_x + h sum_i b_i k_i)

Euler (s=1, b=[1], h=1) is exactly the ResNet block of He et al. 2015, Eq. (1)-(2); the other tableaux
give the HO-ResNet blocks of Luo et al. 2021 (arXiv 2103.15244, Sec. 3). Schemes are data: there is no
per-scheme class.
"""

from __future__ import annotations

import torch
from torch import nn

from ..schemes import Tableau


class _GradMask(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by a fixed (per-sample) mask."""

    @staticmethod
    def forward(ctx, t, mask):
        ctx.save_for_backward(mask)
        return t.view_as(t)

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return grad * mask, None


class SchemeBlock(nn.Module):
    """One step of ``scheme`` with units ``F_1..F_s`` (or one shared unit when ``tied``).

    ``shortcut=None`` means no skip at all (plain nets). ``learn_step`` makes h a trainable scalar named
    ``step`` (initialised to ``step``); otherwise h is folded into the coefficients.

    Path-level switches for analysis (Veit et al. 2016): ``zeroed`` holds the indices (0-based) of increments
    switched off (k_i = 0, unit not run); ``route`` (None = off) maps the edges that keep their gradient --
    ``("x", i)`` input into increment i, ``(j, i)`` k_j into increment i, ``(i, "y")`` k_i into the output,
    ``("x", "y")`` the skip -- to ``True`` or to a per-sample 0/1 mask of shape (B, 1, 1, 1) (one routed path
    per batch element). The forward pass is unchanged; every edge not in ``route`` is cut in the backward pass.
    """

    def __init__(
        self,
        scheme: Tableau,
        units: list[nn.Module],
        shortcut: nn.Module | None,
        post: nn.Module | None = None,
        step: float = 1.0,
        learn_step: bool = False,
        tied: bool = False,
    ):
        super().__init__()
        s = scheme.increments
        if len(units) != (1 if tied else s):
            raise ValueError(f"scheme {scheme.name!r} needs {1 if tied else s} unit(s), got {len(units)}")
        self.scheme, self.tied, self.learn_step = scheme, tied, learn_step
        self.units = nn.ModuleList(units)
        self.shortcut = shortcut
        self.post = post if post is not None else nn.Identity()
        if learn_step:
            self.step = nn.Parameter(torch.tensor(float(step)))
            scale = 1.0
        else:
            self.fixed_step = float(step)
            scale = self.fixed_step
        self._rows = tuple(tuple((j, a * scale) for j, a in row) for row in scheme.nonzero_A())
        self._weights = tuple((i, w * scale) for i, w in scheme.nonzero_b())
        used = {i for i, _ in self._weights} | {j for row in self._rows for j, _ in row}
        self._needed = tuple(i in used for i in range(s))
        self.zeroed: frozenset[int] = frozenset()
        self.route: dict | None = None

    @property
    def h(self):
        return self.step if self.learn_step else self.fixed_step

    def unit(self, i: int) -> nn.Module:
        """The module computing increment ``i`` (0-based)."""
        return self.units[0 if self.tied else i]

    def _combine(self, base, terms, k):
        """``base + h * sum(a * k_j)`` over the non-zero, non-zeroed terms; ``base=None`` means 0."""
        if self.learn_step:
            acc = self._combine_fixed(None, terms, k)
            if acc is None:
                return base
            acc = acc * self.step
            return acc if base is None else base + acc
        return self._combine_fixed(base, terms, k)

    @staticmethod
    def _combine_fixed(base, terms, k):
        out, fresh = base, False
        for j, a in terms:
            kj = k[j]
            if kj is None:
                continue
            if out is None:
                out, fresh = (kj, False) if a == 1.0 else (kj * a, True)
            elif fresh:
                out.add_(kj, alpha=a)  # our own temporary: add in place (add needs no saved inputs)
            else:
                out, fresh = out.add(kj, alpha=a), True
        return out

    def _zeros_out(self, x):
        """Zeros of the block's output shape (what a fully deleted plain block passes on)."""
        unit = self.unit(0)
        while isinstance(unit, NestedUnit):
            unit = unit.block.unit(0)
        stride, channels = getattr(unit, "stride", 1), getattr(unit, "out_channels", x.shape[1])
        return x.new_zeros(x.shape[0], channels, -(-x.shape[2] // stride), -(-x.shape[3] // stride))

    def _gate(self, edge, t):
        keep = self.route.get(edge)
        if t is None or keep is True:
            return t
        return t.detach() if keep is None else _GradMask.apply(t, keep)

    def _routed(self, target, base, k):
        """``base`` and the ``k_j`` with their gradient gated by the route's edges into ``target``."""
        return self._gate(("x", target), base), [self._gate((j, target), kj) for j, kj in enumerate(k)]

    def _increments(self, x, sx):
        k = [None] * self.scheme.increments
        for i, row in enumerate(self._rows):
            if not self._needed[i] or i in self.zeroed:
                continue
            if i == 0:
                z = x if self.route is None else self._gate(("x", 0), x)
            else:
                base, ks = (sx, k) if self.route is None else self._routed(i, sx, k)
                z = self._combine(base, row, ks)
            if z is None:  # plain block with every earlier increment zeroed
                z = self._zeros_out(x)
            k[i] = self.unit(i)(z)
        return k

    def _output(self, sx, k):
        if self.route is not None:
            sx, k = self._routed("y", sx, k)
        return self._combine(sx, self._weights, k)

    def increment(self, x):
        """``h * sum_i b_i k_i`` without the skip (used when the block is a unit of an outer scheme)."""
        sx = self.shortcut(x) if self.shortcut is not None else None
        out = self._output(None, self._increments(x, sx))
        return out if out is not None else self._zeros_out(x)

    def forward(self, x):
        sx = self.shortcut(x) if self.shortcut is not None else None
        y = self._output(sx, self._increments(x, sx))
        if y is None:  # plain block with its only increment zeroed
            y = self._zeros_out(x)
        elif y is sx:  # every increment zeroed: never let an in-place post-activation touch the input
            y = y.clone()
        return self.post(y)

    def extra_repr(self) -> str:
        step = "learnable" if self.learn_step else self.fixed_step
        return f"scheme={self.scheme.name}, increments={self.scheme.increments}, tied={self.tied}, step={step}"


class NestedUnit(nn.Module):
    """A unit that is itself one step of an inner scheme (RK-in-RK): returns the inner increment."""

    def __init__(self, block: SchemeBlock):
        super().__init__()
        self.block = block

    def forward(self, x):
        return self.block.increment(x)
