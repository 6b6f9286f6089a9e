"""What a multistep stage's coefficients are now, for logs, ``info`` and the analyses: their values, the numeric
per-step coefficients, the per-unit residual weights and the inversion analysis of reversible training, at the current
(learned) values. Mixed into :class:`~horesnet.nn.multistep_coefficients.StageCoefficients`, which supplies
``family``, ``scheme``, ``k``, ``units``, ``theta``, ``alpha`` and ``table``."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..schemes.stage import inversion_error, safe_depth


class CoefficientReports:
    """The reporting half of :class:`~horesnet.nn.multistep_coefficients.StageCoefficients`."""

    def values(self) -> dict[str, float | list[float]]:
        """The learned coefficients now: ``{name: value}`` (per channel: a list), for logs and ``info``."""
        if self.family is None:
            return {}
        if self.family.kind == "history":
            return {"alpha": [float(v) for v in self.alpha.detach().double()]}
        theta = self.theta(torch.float64).detach()
        return {self.family.name: theta.tolist() if theta.dim() else float(theta)}

    def numeric_steps(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per step, (α^n, c^n) as float64 arrays of shape (len, channels) (channels 1 unless per channel)."""
        table, tensors = self.table(torch.float64)
        value = lambda c: np.atleast_1d(c if isinstance(c, float)  # noqa: E731
                                        else tensors[c].detach().double().flatten().cpu().numpy())
        out = []
        for xs, fs in table:
            width = max([1] + [len(value(c)) for _, c in (*xs, *fs)])
            a = np.zeros((1 + max((j for j, _ in xs), default=0), width))
            b = np.zeros((1 + max((j for j, _ in fs), default=0), width))
            for j, c in xs:
                a[j] = value(c)
            for j, c in fs:
                b[j] = value(c)
            out.append((a, b))
        return out

    def residual_weights(self) -> list[float]:
        """∂x_T/∂F_s of each unit s = 1..T at the current coefficients (the recurrence of
        ``Multistep.residual_weights``, run per channel and averaged over channels; post-activations ignored)."""
        steps = self.numeric_steps()
        width = max(a.shape[1] for a, _ in steps)
        w = np.zeros((self.units + 1, self.units, width))
        for n, (a, b) in enumerate(steps):
            for j in range(a.shape[0]):
                w[n + 1] += a[j] * w[n - j]
            for j in range(b.shape[0]):
                w[n + 1, n - j] += b[j]
        return [float(x) for x in w[self.units].mean(axis=1)]

    def inversion_roots(self) -> list[tuple[complex, ...] | None]:
        """The roots of ρ that govern the inverted recurrence (``Multistep.inversion_roots``) at the current
        coefficients: one tuple per distinct value of a learned affine coefficient (one per channel when per channel),
        else the scheme's; None for a value at which the step is not invertible."""
        if self.family is None or self.family.kind != "affine":
            return [self.scheme.inversion_roots]
        values = sorted({float(v) for v in np.atleast_1d(self.theta(torch.float64).detach().cpu().numpy())})
        if self.k == 2 and self.scheme.preconsistent:  # ρ(ζ) = (ζ − 1)(ζ + α_1): roots 1 and −α_1
            roots = [-(self.family.alpha0[1] + v * self.family.dalpha[1]) for v in values]
            return [None if r == 0 else (1 + 0j, complex(r)) for r in roots]
        return [self.scheme.at(**{self.family.name: v}).inversion_roots for v in values]

    def inversion_growth(self) -> float:
        """Per-unit growth of the inverted recurrence's fastest mode, 1/min|ζ|, at the current coefficients (worst
        channel): the reported factor."""
        return max(math.inf if r is None else 1 / min((abs(z) for z in r), default=1.0) for r in self.inversion_roots())

    def inversion_error(self, units: int, eps: float) -> float:
        """First-order relative reconstruction error of ``units`` inverted steps at the current coefficients
        (:func:`horesnet.schemes.stage.inversion_error`), of the worst channel."""
        return max(inversion_error(r, units, eps) for r in self.inversion_roots())

    def safe_inversion_depth(self, tolerance: float, eps: float) -> int:
        """Most steps that can be inverted with ``inversion_error <= tolerance`` at the current coefficients, for
        the worst channel (:func:`horesnet.schemes.stage.safe_depth`)."""
        return min(safe_depth(r, tolerance, eps) for r in self.inversion_roots())
