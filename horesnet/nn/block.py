"""The one residual block: a step of an explicit Runge-Kutta scheme (docs/design.md, "The block").

    s_x = S(x);  k_1 = F_1(x);  k_i = F_i(s_x + h sum_{j<i} A[i,j] k_j);  y = post(s_x + h sum_i b_i k_i)

Euler (s=1, b=[1], h=1) is exactly the ResNet block of He et al. 2015, Eq. (1)-(2); the other tableaux
give the HO-ResNet blocks of Luo et al. 2021 (arXiv 2103.15244, Sec. 3). Schemes are data: there is no
per-scheme class. "Increment" is k_i (the RK literature's "stage"); a stage here is a run of blocks at one
resolution (docs/design.md, "Terms").
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..schemes import Tableau
from .combine import Pass, combine
from .hooks import OUTPUT
from .recompute import checkpointed

NO_TORCHSCRIPT = (
    "horesnet networks cannot be compiled with TorchScript (torch.jit.script): a block's scheme loop, its hooks and "
    "its fused combination are Python that TorchScript does not support, and TorchScript is in maintenance mode. "
    "Use torch.fx.symbolic_trace (timm's FeatureGraphNet, torchvision's create_feature_extractor), torch.compile "
    "(horesnet.models.compile_model) or torch.export.export instead (docs/model_api.md, \"TorchScript\").")


def unit_out_shape(unit: nn.Module, in_shape) -> tuple:
    """The output shape ``unit`` gives for an input of ``in_shape``, as it declares it: ``unit.out_shape(in_shape)``
    (horesnet's units and :class:`NestedUnit` declare it). A unit that declares none (a plugin's) is taken to map
    ``(B, C, H, W)`` to ``(B, out_channels, ceil(H/stride), ceil(W/stride))`` from its attributes, stride 1 and the
    input's channels where it has none (docs/extending.md, "Units")."""
    declared = getattr(unit, "out_shape", None)
    if callable(declared):
        return declared(in_shape)
    stride, channels = getattr(unit, "stride", 1), getattr(unit, "out_channels", in_shape[1])
    return in_shape[0], channels, -(-in_shape[2] // stride), -(-in_shape[3] // stride)


class SchemeBlock(nn.Module):
    """One step of ``scheme`` with units ``F_1..F_s`` (or one shared unit when ``tied``).

    ``shortcut=None`` means no skip at all (plain nets). ``step`` is h: a trainable scalar parameter when
    ``learn_step`` (initialised to ``step``), else a number folded into the coefficients. ``hook`` (None by default)
    lets lesions, gradient routing and drop-path act on the block from outside (``horesnet.nn.hooks``).
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
        self.step = nn.Parameter(torch.tensor(float(step))) if learn_step else float(step)
        scale = 1.0 if learn_step else self.step
        rows = tuple(tuple((j, a * scale) for j, a in row) for row in scheme.nonzero_A())
        weights = tuple((i, w * scale) for i, w in scheme.nonzero_b())
        used = {i for i, _ in weights} | {j for row in rows for j, _ in row}
        self.needed = tuple(i in used for i in range(s))  # increments that reach the output
        # (target, its non-zero (j, h a_ij)), in order: the increments that reach the output, then OUTPUT's (j, h b_j)
        self._targets = tuple((i, row) for i, row in enumerate(rows) if self.needed[i]) + ((OUTPUT, weights),)
        self._uses = tuple(sum(j == i for _, row in self._targets for j, _ in row) for i in range(s))
        self._shared = any(u > 1 for u in self._uses)  # without a shared increment autograd's adds are as cheap
        self.hook = None
        self.fused = True  # chooses the combiner, see the setter
        self.recompute_units = False  # activation checkpointing, one checkpoint per unit call (nn/recompute.py)

    @property
    def fused(self) -> bool:
        """Whether the increment combinations use the fused backward of nn/combine.py (default) rather than plain
        autograd adds. Setting it chooses ``_combine``, the block's combiner, once (``__init__`` sets it)."""
        return self._fused

    @fused.setter
    def fused(self, value: bool) -> None:
        self._fused = value
        # fused only where it pays (an increment read by several combinations) and h is folded into the coefficients
        self._fusable = bool(value) and self._shared and not self.learn_step
        if self.learn_step:
            self._combine = self._combine_learned
        else:
            self._combine = self._combine_fused if self._fusable else self._add_terms

    @property
    def active(self) -> tuple[bool, ...]:
        """Per increment: computed in a forward pass (reaches the output and is not switched off by the hook)."""
        off = self.hook.off if self.hook is not None else ()
        return tuple(n and i not in off for i, n in enumerate(self.needed))

    def unit(self, i: int) -> nn.Module:
        """The module computing increment ``i`` (0-based)."""
        return self.units[0 if self.tied else i]

    def _increments(self, x, sx, y_base):
        """One step of the scheme, from its Butcher tableau (A, b) (Luo et al. 2021, HO-ResNet, Sec. 3):

            k_i = F_i(x + h sum_j a_ij k_j),   y = x + h sum_i b_i k_i

        where x is the block input for k_1 and the shortcut s_x for the other increments, and ``y_base`` for y (s_x,
        or None: 0 for a nested unit's increment). Returns y without ``post`` (None: all zero). Increments that do
        not reach the output are not computed; the hook may change a target's (base, k) or switch increment i off.
        """
        k, state = [None] * self.scheme.increments, self._new_pass()
        try:
            for i, a_i in self._targets:  # a_i: the non-zero (j, h a_ij) of row i; for OUTPUT the (j, h b_j)
                base = x if i == 0 else (y_base if i == OUTPUT else sx)
                ks = k
                if self.hook is not None:
                    got = self.hook(self, i, base, k)
                    if got is None:  # increment switched off: k_i = 0
                        continue
                    base, ks = got
                z = self._combine(base, a_i, ks, state)  # base + h sum_j a_ij k_j
                if i == OUTPUT:
                    return z
                k[i] = self._unit_out(i, z if z is not None else self._zeros_out(x))  # k_i = F_i(z)
            return None
        finally:
            if state is not None:
                state.taps.clear()  # the pass's tensors are not kept alive for backward

    def _new_pass(self) -> Pass | None:
        """The fused combiner's gradient accumulators for this call, or None (its plain adds). Decided per call, not
        at construction: grad mode changes between calls (no backward: nothing to fuse), and under torch.compile
        dynamo traces the plain adds and fuses them itself."""
        fused = self._fusable and torch.is_grad_enabled() and not torch.compiler.is_compiling()
        return Pass() if fused else None

    def _combine_fused(self, base, terms, k, state):
        """The combination with a fused backward (nn/combine.py); plain adds when this call has no pass."""
        if state is None:
            return self._add_terms(base, terms, k)
        return combine(state, base, terms, k, self._uses)

    def _combine_learned(self, base, terms, k, state=None):
        """``base + h * sum(a * k_j)`` with h the learnable ``step`` (always plain adds)."""
        acc = self._add_terms(None, terms, k)
        if acc is None:
            return base
        acc = acc * self.step
        return acc if base is None else base + acc

    @staticmethod
    def _add_terms(base, terms, k, state=None):
        """``base + sum(a * k_j)`` over the ``(j, a)`` of ``terms`` whose k_j exists with plain autograd adds
        (``base=None``: 0; None when nothing is summed)."""
        out, fresh = base, False
        for j, a in terms:
            kj = k[j]
            if kj is None:
                continue
            if out is None:
                out, fresh = (kj, False) if a == 1.0 else (kj * a, True)
            elif fresh:
                # our own temporary: add in place (add needs no saved inputs); the result is bound so that a
                # traced graph (torch.fx) uses it and dead-code elimination keeps the add
                out = out.add_(kj, alpha=a)
            else:
                out, fresh = out.add(kj, alpha=a), True
        return out

    def _zeros_out(self, x):
        """Zeros of the block's output shape (what a fully switched-off plain block passes on)."""
        return x.new_zeros(unit_out_shape(self.unit(0), x.shape))

    def _unit_out(self, i: int, z):
        """``F_i(z)``; with ``recompute_units`` while training, only ``z`` is kept for backward."""
        unit = self.unit(i)
        return checkpointed(unit, z) if self.recompute_units and torch.is_grad_enabled() else unit(z)

    def increment(self, x):
        """``h * sum_i b_i k_i`` without the skip (used when the block is a unit of an outer scheme)."""
        sx = self.shortcut(x) if self.shortcut is not None else None
        out = self._increments(x, sx, None)
        return out if out is not None else self._zeros_out(x)

    def forward(self, x):
        sx = self.shortcut(x) if self.shortcut is not None else None
        y = self._increments(x, sx, sx)
        if y is None:  # plain block with its only increment switched off
            y = self._zeros_out(x)
        elif y is sx:  # every increment switched off: never let an in-place post-activation touch the input
            y = y.clone()
        return self.post(y)

    def __prepare_scriptable__(self):
        raise ConfigError(NO_TORCHSCRIPT)

    def extra_repr(self) -> str:
        step = "learnable" if self.learn_step else self.step
        return f"scheme={self.scheme.name}, increments={self.scheme.increments}, tied={self.tied}, step={step}"


class NestedUnit(nn.Module):
    """A unit that is itself one step of an inner scheme (RK-in-RK): returns the inner increment."""

    def __init__(self, block: SchemeBlock):
        super().__init__()
        self.block = block

    def out_shape(self, in_shape) -> tuple:
        """The inner block's increments' shape: that of its (first) unit."""
        return unit_out_shape(self.block.unit(0), in_shape)

    def forward(self, x):
        return self.block.increment(x)
