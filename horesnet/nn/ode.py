"""Continuous-depth reference block (Chen et al. 2018, "Neural Ordinary Differential Equations").

The state follows dz/dt = F(z) on [0, T] with one unit F, solved by torchdiffeq's ``odeint`` (adaptive
``dopri5`` by default) or ``odeint_adjoint``. The number of function evaluations (NFE) of the last forward
pass is kept in ``nfe``; ``nfe_total`` accumulates over passes.
"""

from __future__ import annotations

import torch
from torch import nn
from torchdiffeq import odeint, odeint_adjoint

from ..errors import ConfigError

ADAPTIVE = ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")
FIXED = ("euler", "midpoint", "rk4", "explicit_adams", "implicit_adams")
ODE_METHODS = ADAPTIVE + FIXED


class ODEFunc(nn.Module):
    """Autonomous vector field f(t, z) = F(z) that counts its evaluations."""

    def __init__(self, unit: nn.Module):
        super().__init__()
        self.unit = unit
        self.nfe = 0

    def forward(self, t, z):
        self.nfe += 1
        return self.unit(z)


class ODEBlock(nn.Module):
    """z(T) = z(0) + integral_0^T F(z(t)) dt, solved with torchdiffeq."""

    def __init__(
        self,
        unit: nn.Module,
        method: str = "dopri5",
        rtol: float = 1e-3,
        atol: float = 1e-3,
        adjoint: bool = False,
        t1: float = 1.0,
        step_size: float | None = None,
    ):
        super().__init__()
        if method not in ODE_METHODS:
            raise ConfigError(f"unknown ode_method {method!r}; valid choices: {', '.join(ODE_METHODS)}.")
        if not (rtol > 0 and atol > 0 and t1 > 0):
            raise ConfigError(f"ode_rtol, ode_atol and the horizon must be > 0 (got {rtol}, {atol}, {t1}).")
        self.func = ODEFunc(unit)
        self.method, self.rtol, self.atol, self.adjoint, self.t1 = method, rtol, atol, adjoint, t1
        self.step_size = step_size
        self.nfe = 0
        self.nfe_total = 0

    def forward(self, x):
        t = torch.tensor([0.0, self.t1], dtype=x.dtype, device=x.device)
        options = {"step_size": self.step_size} if self.method in FIXED and self.step_size else None
        solve = odeint_adjoint if self.adjoint else odeint
        self.func.nfe = 0
        z = solve(self.func, x, t, rtol=self.rtol, atol=self.atol, method=self.method, options=options)[-1]
        self.nfe = self.func.nfe
        self.nfe_total += self.nfe
        return z

    def extra_repr(self) -> str:
        return f"method={self.method}, rtol={self.rtol}, atol={self.atol}, adjoint={self.adjoint}, T={self.t1}"
