"""What each step of a multistep stage combines, fixed or learned (docs/multistep.md, "Networks").

Step n of a stage of T units (unit n computes F_n = F(x_n)) is

    x_{n+1} = post_n( Σ_j a^n_j x_{n−j} + Σ_j c^n_j F_{n−j} ),        c^n_j = h β^n_j

with (a^n, β^n) the scheme's ``stage_coefficients(T)``: its full (α, β) once enough states exist, its starter rule
before. :meth:`StageCoefficients.table` gives them per forward pass as a *table*, one ``(state_terms, unit_terms)``
pair per step, each term ``(j, c)`` with ``c`` a Python float (fixed: the scheme's float64 value, used as given in
every dtype -- Momentum ResNet's γ = 0.9 is never rounded to float32 first) or an ``int`` indexing the list of
coefficient tensors of this pass (learned ones), so that the plain loop and the reversible backward
(:mod:`horesnet.nn.reversible`) read one description. The table is a
:class:`~horesnet.nn.multistep_steps.StepTable`; its structure is built once where it does not depend on the values
(fixed coefficients; a learned LM-ResNet k or Momentum ResNet γ with a fixed h), so a pass computes only the
coefficient tensors, and without a graph to build (eval, no grad) not even those while the parameter is unchanged.

Learned coefficients (``learn``, the family's default when None):

- an affine family (LM-ResNet's k, Momentum ResNet's γ; :class:`~horesnet.schemes.Learnable`):
  θ = c + r·(tanh(d + d0) − tanh(d0)) with d the parameter ``coefficient`` (initialised to 0), c the initial value,
  r = (hi − lo)/2 and d0 = atanh((2c − lo − hi)/(hi − lo)) for the family's zero-stable interval (lo, hi). θ is c
  exactly at initialisation, in any dtype, and stays strictly inside (lo, hi) whatever the optimiser does: LM's k in
  (−1, 1) (roots 1 and −k), γ in (−1, 1). Σα = 1 holds for every θ (Σ dalpha = 0). One θ, or one per channel
  (``per_channel``; LM-ResNet's per-channel k is drawn from the published U[−0.1, 0] unless a value is given).
- the history family (``average``): per step n >= 1 the weights α^n_1..α^n_n of the older states are entries of
  the parameter ``alpha`` (one flat vector of T(T−1)/2 entries, initialised to 0: the identity), and
  α^n_0 = 1 − Σ_{j>=1} α^n_j, so Σα = 1 by construction.

The initial values are float64 buffers (``center``, ``offset``), cast to the working dtype where used.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from ..schemes import Multistep
from .multistep_reports import CoefficientReports
from .multistep_steps import StepTable


def _number(value) -> float:
    return float(value.detach().double().mean()) if torch.is_tensor(value) else float(value)


def _affine(c0: float, dc: float, theta: torch.Tensor) -> torch.Tensor:
    """``c0 + θ·dc`` with the roundings of that expression in fewer operations (θ·1 is θ, θ·(−1) is −θ, 0 + t is t)."""
    if dc == 1.0:
        return theta + c0 if c0 else theta
    if dc == -1.0:
        return c0 - theta if c0 else -theta
    return theta * dc + c0 if c0 else theta * dc


def _tracing(*tensors) -> bool:
    """Whether ``tensors`` are traced (torch.fx proxies, torch.compile): no caches keyed on their versions then."""
    return torch.compiler.is_compiling() or any(isinstance(t, torch.fx.Proxy) for t in tensors)


def _unused(scheme: Multistep, family, units: int) -> bool:
    """Whether the learnable ``family`` changes none of the coefficients of a stage of ``units`` steps."""
    if family.kind == "history":
        return units < 2
    at = lambda v: scheme.at(**{family.name: v}).stage_coefficients(units)  # noqa: E731
    return at(0.25) == at(0.5)


class StageCoefficients(CoefficientReports, nn.Module):
    """The coefficients of one multistep stage of ``units`` steps (see the module docstring; what they are now, for
    logs and reports: :class:`~horesnet.nn.multistep_reports.CoefficientReports`)."""

    def __init__(self, scheme: Multistep, units: int, channels: int, step: float = 1.0, learn_step: bool = False,
                 learn: bool | None = None, per_channel: bool = False, value: float | None = None):
        super().__init__()
        family = scheme.learnable[0] if scheme.learnable else None
        if value is not None:
            if family is None or family.kind != "affine":
                raise ConfigError(f"coefficient={value!r}: scheme {scheme.name!r} has no coefficient family to set "
                                  "(lm's k and momentum's gamma have one).")
            lo, hi, lo_in, hi_in = family.zero_stable_range
            if not (lo < value < hi or (lo_in and value == lo) or (hi_in and value == hi)):
                raise ConfigError(f"coefficient={value!r}: scheme {scheme.name!r} is zero-stable only for "
                                  f"{family.name} in {'[' if lo_in else '('}{lo:g}, {hi:g}{']' if hi_in else ')'} "
                                  "(its parasitic solutions would grow with depth).")
            scheme = scheme.at(**{family.name: float(value)})
            family = scheme.learnable[0]
        if learn is None:
            learn = bool(family and family.learn)
        if learn and family is None:
            raise ConfigError(f"learn_coefficients=true: scheme {scheme.name!r} has no learnable coefficients "
                              "(lm's k, momentum's gamma and average's weights are).")
        if per_channel and not (learn and family.kind == "affine" and family.per_channel):
            raise ConfigError(f"coefficient_per_channel=true needs a learned coefficient that may be one per channel "
                              f"(lm's k with learn_coefficients=true); scheme {scheme.name!r} has none.")
        self.scheme, self.units, self.k = scheme, units, scheme.k
        if learn and _unused(scheme, family, units):  # e.g. a stage of one (starter) step: nothing to learn
            learn = per_channel = False
        self.family = family if learn else None
        self.learn_step = learn_step
        self.step = nn.Parameter(torch.tensor(float(step))) if learn_step else float(step)
        self._fixed = scheme.stage_coefficients(units)
        if self.family is not None and self.family.kind == "affine":
            lo, hi = self.family.zero_stable_range[:2]
            c = float(self.family.init)
            if not lo < c < hi:
                raise ConfigError(f"a learned {self.family.name} must start strictly inside its zero-stable interval "
                                  f"({lo:g}, {hi:g}); got {c:g} (learn_coefficients=false keeps it fixed there).")
            centre = torch.full((channels,) if per_channel else (), c, dtype=torch.float64)
            if per_channel and value is None and self.family.init_range is not None:
                a, b = self.family.init_range
                centre = centre.uniform_(a, b)
            self.register_buffer("center", centre)
            self.register_buffer("offset", torch.atanh((2 * centre - lo - hi) / (hi - lo)))
            self.radius = (hi - lo) / 2
            self.coefficient = nn.Parameter(torch.zeros_like(centre, dtype=torch.get_default_dtype()))
        elif self.family is not None:  # history: one weight per older state of every step
            self.alpha = nn.Parameter(torch.zeros(units * (units - 1) // 2))
        self.per_channel = per_channel

    # ------------------------------------------------------------------ values
    def _memo(self, slot: str, owners: tuple, key: tuple, build):
        """``build()``, computed once while ``owners`` are the same objects and ``key`` (their versions, the dtype,
        the mode) is unchanged; kept in ``__dict__``, so that a copy takes it along."""
        cached = self.__dict__.get(slot)
        if cached is None or cached[1] != key or any(a is not b for a, b in zip(cached[0], owners, strict=True)):
            cached = (owners, key, build())
            self.__dict__[slot] = cached
        return cached[2]

    def theta(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The affine family's value θ (scalar or per channel), differentiable in ``coefficient``, computed in
        ``dtype`` (default: the parameter's). ``center``, ``offset`` and tanh(offset) in that dtype are computed once
        while the buffers are unchanged."""
        d = self.coefficient if dtype is None else self.coefficient.to(dtype)
        center, offset, dtype = self.center, self.offset, d.dtype
        if _tracing(center, offset, dtype):  # a traced parameter's dtype is an fx proxy too
            constants = center.to(dtype), offset.to(dtype), torch.tanh(offset.to(dtype))
        else:
            def constants():
                with torch.no_grad():
                    off = offset.to(dtype)
                    return center.to(dtype), off, torch.tanh(off)

            key = (center._version, offset._version, dtype, torch.is_inference_mode_enabled())
            constants = self._memo("_constants_cache", (center, offset), key, constants)
        return constants[0] + self.radius * (torch.tanh(d + constants[1]) - constants[2])

    def table(self, dtype: torch.dtype | None = None):
        """``(table, tensors)``: per step, ``((j, c), ...)`` state terms and unit terms (see the module docstring);
        learned coefficients computed in ``dtype`` (default: their parameters')."""
        if self.family is None and not self.learn_step:
            fixed = lambda: StepTable(self._terms(a, [self.step * b for b in bs], None) for a, bs in self._fixed)  # noqa: E731
            return self._memo("_fixed_cache", (), (), fixed), []
        if self.family is not None and self.family.kind == "affine" and not self.learn_step:
            template = self._memo("_affine_cache", (), (), self._affine_template)
            if template is not None:
                return template[0], self._affine_tensors(template[1], dtype)
        tensors: list[torch.Tensor] = []
        seen: dict[int, tuple[int, torch.Tensor]] = {}  # id -> (index, the tensor: kept alive, so no id is reused)

        def ref(c):
            if isinstance(c, float):
                return c
            if id(c) not in seen:
                seen[id(c)] = (len(tensors), c)
                tensors.append(c.view(-1, 1, 1) if self.per_channel else c)  # per channel: broadcast over (C, H, W)
            return seen[id(c)][0]

        h = self.step if dtype is None or not self.learn_step else self.step.to(dtype)
        if self.family is not None and self.family.kind == "history":
            return StepTable(self._history_table(h, ref, dtype)), tensors
        if self.family is None:  # a learned step
            steps = self._fixed
        else:
            theta, fam = self.theta(dtype), self.family
            alpha = [a0 + theta * da if da else float(a0) for a0, da in zip(fam.alpha0, fam.dalpha, strict=True)]
            beta = [b0 + theta * db if db else float(b0) for b0, db in zip(fam.beta0, fam.dbeta, strict=True)]
            steps = self._starter(alpha, beta)
        times_h = lambda bs: [h * b if torch.is_tensor(b) or b else 0.0 for b in bs]  # noqa: E731
        return StepTable(self._terms(a, times_h(bs), ref) for a, bs in steps), tensors

    def _affine_template(self):
        """``(table, recipe)`` of a learned affine family whose starter steps do no arithmetic on the coefficients
        (k <= 2 with the repeat rule: LM-ResNet, Momentum ResNet) and a fixed h: the table's structure, built once,
        and per coefficient index the ``("a" | "b", j)`` it holds (α_j or h·β_j). None: built per forward instead.
        Each coefficient is one tensor shared by every step that uses it; α_0 = 1 − α_1 by construction when the
        family's α0 sums to 1 and its dalpha to 0 (``StepTable.complements``: such a step is one lerp)."""
        fam, k, h = self.family, self.k, self.step
        if not (k == 1 or (k == 2 and self.scheme.starter == "repeat")):
            return None
        alpha = [("a", j) if da else float(a0) for j, (a0, da) in enumerate(zip(fam.alpha0, fam.dalpha, strict=True))]
        beta = [("b", j) if db else float(b0) for j, (b0, db) in enumerate(zip(fam.beta0, fam.dbeta, strict=True))]
        recipe: list[tuple[str, int]] = []

        def ref(c):
            if isinstance(c, float):
                return c
            if c not in recipe:
                recipe.append(c)
            return recipe.index(c)

        times_h = lambda bs: [b if isinstance(b, tuple) else (h * b if b else 0.0) for b in bs]  # noqa: E731
        steps = [self._terms(a, times_h(bs), ref) for a, bs in self._starter(alpha, beta)]
        complements = {}
        if (("a", 0) in recipe and ("a", 1) in recipe and len(fam.alpha0) == 2
                and float(sum(fam.alpha0)) == 1.0 and float(sum(fam.dalpha)) == 0.0):
            complements[recipe.index(("a", 0))] = recipe.index(("a", 1))
        return StepTable(steps, complements), tuple(recipe)

    def _affine_tensors(self, recipe, dtype):
        """The coefficient tensors of :meth:`_affine_template`'s ``recipe`` at the current θ (the values of the
        generic path: a0 + θ·da, times h). Without a graph to build (no grad, or a frozen parameter) they are
        computed once while the parameter is unchanged (its version)."""

        def tensors():
            theta = self.theta(dtype)
            if self.per_channel:
                theta = theta.view(-1, 1, 1)  # per channel: broadcast over (C, H, W)
            fam, h, out = self.family, self.step, []
            for kind, j in recipe:
                c0, dc = (fam.alpha0[j], fam.dalpha[j]) if kind == "a" else (fam.beta0[j], fam.dbeta[j])
                t = _affine(float(c0), float(dc), theta)
                out.append(h * t if kind == "b" and h != 1.0 else t)  # (h = 1: 1.0·t is t)
            return out

        p, center, offset = self.coefficient, self.center, self.offset
        if _tracing(p, center, offset) or (torch.is_grad_enabled() and p.requires_grad):
            return tensors()
        key = (p._version, p.dtype, p.device, p.data_ptr(), dtype, torch.is_inference_mode_enabled(),
               torch.is_grad_enabled(), self.step, center._version, offset._version)
        return self._memo("_tensors_cache", (p, center, offset), key, tensors)

    @staticmethod
    def _terms(alpha, beta, ref):
        keep = (lambda c: c) if ref is None else ref
        fixed = lambda c: isinstance(c, (int, float))  # noqa: E731
        terms = lambda cs: tuple((j, keep(float(c) if fixed(c) else c)) for j, c in enumerate(cs)  # noqa: E731
                                 if not fixed(c) or c != 0)
        return terms(alpha), terms(beta)

    def _starter(self, alpha, beta):
        """``stage_coefficients`` for coefficients that may be tensors (the same rule, see Multistep)."""
        out, k, scheme = [], self.k, self.scheme
        for n in range(self.units):
            if k <= n + 1:
                out.append((alpha, beta))
            elif scheme.starter == "euler":
                rho1 = 1 + sum(j * a for j, a in enumerate(alpha))
                h_eff = sum(beta) / rho1
                out.append(([1.0], [h_eff]))
            else:  # repeat: x_(-i) = x_0, the missing alphas folded into the coefficient of x_0 (Σα = 1)
                folded = 1 - sum(alpha[:n]) if n else 1.0
                out.append(([*alpha[:n], folded], beta[:n + 1]))
        return out

    def _history_table(self, h, ref, dtype=None):
        steps, at = [], 0
        beta0 = self.scheme.beta[0]
        weights = self.alpha if dtype is None else self.alpha.to(dtype)
        for n in range(self.units):
            older = [weights[at + i] for i in range(n)]  # indexed one by one: traceable by torch.fx
            at += n
            alpha = [1 - weights[at - n:at].sum(), *older] if n else [1.0]
            steps.append(self._terms(alpha, [h * beta0], ref))
        return tuple(steps)

    def extra_repr(self) -> str:
        learned = f"learned {self.family.name}" if self.family is not None else "fixed"
        return f"scheme={self.scheme.name}, units={self.units}, {learned}, step={_number(self.step):g}"


def is_scheme_parameter(name: str) -> bool:
    """Whether the parameter called ``name`` is a scheme's own: a learnable step h (``*.step``) or a multistep
    block's learned coefficients (``*.coefficients.coefficient``, ``*.coefficients.alpha``). The default recipe
    trains them without weight decay (``optim.step_weight_decay``, 0), which would pull them to 0."""
    parts = name.split(".")
    return parts[-1] == "step" or (len(parts) >= 2 and parts[-2] == "coefficients"
                                   and parts[-1] in ("coefficient", "alpha"))
