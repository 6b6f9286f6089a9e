"""The increment combination of a scheme block, ``base + sum_j a_j k_j``, with a fused backward (docs/speed.md).

Written with autograd's ``add(alpha=a)``, every term costs a multiply in backward (``g * a``) and every increment
used by several combinations one more add when autograd sums its gradients. Here the forward is one autograd node
per combination (a chain of in-place adds that records nothing), and in backward each combination adds ``a_j g``
straight into the gradient of every increment it used (one ``add_(g, alpha=a_j)`` per term); an increment used more
than once is wrapped in a :class:`_Tap`, an identity whose backward hands autograd the finished sum. An increment
used once gets ``a_j g`` (``g`` itself when ``a_j = 1``) directly. The result equals the autograd formulation
(tests compare them in float64 for every scheme). Not twice differentiable: double backward runs through the plain
path.
"""

from __future__ import annotations

import torch
from torch.autograd import Function


class Pass:
    """Gradient accumulators of one forward pass of one block: a tap per tensor used in several combinations."""

    __slots__ = ("taps", "grads")

    def __init__(self):
        self.taps: dict[int, tuple[torch.Tensor, torch.Tensor, int]] = {}
        self.grads: list[torch.Tensor | None] = []

    def tap(self, t: torch.Tensor) -> tuple[torch.Tensor, int]:
        """The tapped alias of ``t`` (made on first use) and its accumulator slot."""
        got = self.taps.get(id(t))
        if got is None or got[0] is not t:
            slot = len(self.grads)
            self.grads.append(None)
            got = (t, _Tap.apply(t, self, slot), slot)
            self.taps[id(t)] = got
        return got[1], got[2]

    def add(self, slot: int, g: torch.Tensor, a: float) -> None:
        acc = self.grads[slot]
        if acc is None:
            self.grads[slot] = g * a  # a new tensor: g itself is also handed to autograd (the base's gradient)
        else:
            acc.add_(g, alpha=a)


class _Tap(Function):
    """Identity; in backward it returns the gradient the combinations accumulated for it (plus any other)."""

    @staticmethod
    def forward(ctx, t, state, slot):
        ctx.state, ctx.slot = state, slot
        ctx.set_materialize_grads(False)
        return t.view_as(t)

    @staticmethod
    def backward(ctx, g):
        acc = ctx.state.grads[ctx.slot]
        ctx.state.grads[ctx.slot] = None
        if g is not None:
            acc = g if acc is None else acc + g
        return acc, None, None


class _Combine(Function):
    """``base + sum_j coeffs[j] * terms[j]`` (``base=None``: 0); see the module docstring for its backward."""

    @staticmethod
    def forward(ctx, state, coeffs, slots, base, *terms):
        ctx.state, ctx.coeffs, ctx.slots, ctx.has_base = state, coeffs, slots, base is not None
        ctx.set_materialize_grads(False)
        out = base
        for t, a in zip(terms, coeffs, strict=True):
            if out is None:
                out = t * a
            elif out is base:
                out = torch.add(base, t, alpha=a)
            else:
                out = out.add_(t, alpha=a)  # bound: under torch.fx this forward is traced inline (block.py)
        return out

    @staticmethod
    def backward(ctx, g):
        n = len(ctx.coeffs)
        if g is None:
            return (None,) * (4 + n)
        grads = []
        for a, slot in zip(ctx.coeffs, ctx.slots, strict=True):
            if slot is None:  # used once: autograd gets its gradient directly
                grads.append(g if a == 1.0 else g * a)
            else:
                ctx.state.add(slot, g, a)
                grads.append(None)
        return (None, None, None, g if ctx.has_base else None, *grads)


def combine(state: Pass, base, terms, k, uses) -> torch.Tensor | None:
    """``base + sum a k_j`` over the ``(j, a)`` of ``terms`` whose ``k[j]`` exists; None when nothing is summed.

    ``uses[j]`` is how many combinations of the block read ``k_j``: those read more than once are tapped.
    """
    present = [(k[j], a, uses[j] > 1) for j, a in terms if k[j] is not None]
    if not present:
        return base
    if len(present) == 1 and base is None and present[0][1] == 1.0:
        return present[0][0]
    tensors, coeffs, slots = [], [], []
    for t, a, shared in present:
        if shared:
            t, slot = state.tap(t)
        else:
            slot = None
        tensors.append(t)
        coeffs.append(a)
        slots.append(slot)
    return _Combine.apply(state, tuple(coeffs), tuple(slots), base, *tensors)
