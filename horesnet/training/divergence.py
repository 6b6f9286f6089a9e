"""Catch a diverging run without a host-device sync on every step: the loss folds into a flag kept on the device,
read with a scan of every parameter and buffer every ``check_every`` steps and at each epoch's last batch
(docs/reliability.md, section 3)."""

from __future__ import annotations

import math

import torch


class DivergedError(RuntimeError):
    """Training diverged: the loss, a parameter or a BatchNorm statistic became non-finite or exploded."""


class DivergenceGuard:
    def __init__(self, check_every: int = 50, max_loss: float = 1.0e3, max_abs: float = 1.0e8):
        self.check_every, self.max_loss, self.max_abs = int(check_every), float(max_loss), float(max_abs)
        self.worst_loss: torch.Tensor | None = None  # on the device; NaN counts as +inf

    def observe(self, loss: torch.Tensor) -> None:
        """Fold one step's loss into the on-device worst loss (no synchronisation)."""
        loss = torch.nan_to_num(loss.detach().float(), nan=math.inf, posinf=math.inf)
        self.worst_loss = loss if self.worst_loss is None else torch.maximum(self.worst_loss, loss)

    @property
    def flag(self) -> torch.Tensor | None:
        """Whether any loss seen so far was non-finite or above ``max_loss`` (a device tensor)."""
        return None if self.worst_loss is None else self.worst_loss > self.max_loss

    def due(self, step: int, last_batch: bool) -> bool:
        return last_batch or step % self.check_every == 0

    def problem(self, model: torch.nn.Module) -> str | None:
        """Read the flag (one sync) and scan parameters and buffers: what blew up, or None."""
        if self.flag is not None and bool(self.flag):
            return (f"the training loss reached {float(self.worst_loss):.4g} "
                    f"(limit divergence.max_loss={self.max_loss:g}, or non-finite)")
        tensors = [(n, t) for n, t in (*model.named_parameters(), *model.named_buffers()) if t.is_floating_point()]
        if not tensors:
            return None
        peaks = torch.stack([_peak(n, t) for n, t in tensors])  # a negative variance counts as NaN
        if bool((peaks <= self.max_abs).all()):
            return None
        name, tensor, value = next((n, t, float(p)) for (n, t), p in zip(tensors, peaks.tolist(), strict=True)
                                   if not p <= self.max_abs)
        return _negative_variance(name, tensor) or \
            f"max |{name}| = {value:.4g} (limit divergence.max_abs={self.max_abs:g}, or non-finite)"

    def check(self, model: torch.nn.Module, where: str) -> None:
        """Raise DivergedError if :meth:`problem` finds anything."""
        found = self.problem(model)
        if found:
            raise DivergedError(f"the run diverged {where}: {found}")


def _is_variance(name: str) -> bool:
    return name.rsplit(".", 1)[-1] == "running_var"


def _negative_variance(name: str, t: torch.Tensor) -> str | None:
    if _is_variance(name) and bool((t < 0).any()):
        return f"{name} holds negative values (min {float(t.amin()):.4g}; a variance is never negative)"
    return None


def _peak(name: str, t: torch.Tensor) -> torch.Tensor:
    peak = t.detach().abs().amax().float()
    if _is_variance(name):  # BatchNorm's running variance: negative is as broken as NaN (eval gives NaN)
        peak = torch.where(t.detach().amin() < 0, torch.full_like(peak, math.nan), peak)
    return peak


def invalid_tensor(module: torch.nn.Module) -> str | None:
    """What makes ``module``'s loaded state unusable: the first tensor holding NaN or inf, or a BatchNorm
    ``running_var`` with negative values (its evaluation would be NaN); None when all is well."""
    for name, t in module.state_dict().items():
        if not torch.is_tensor(t) or not t.is_floating_point():
            continue
        found = f"{name} holds NaN or inf" if not bool(torch.isfinite(t).all()) else _negative_variance(name, t)
        if found:
            return found
    return None


def non_finite_tensor(tree, prefix: str = "") -> str | None:
    """The key of the first floating-point tensor in ``tree`` (nested dicts/lists) holding NaN or inf."""
    if torch.is_tensor(tree):
        return prefix or "tensor" if tree.is_floating_point() and not bool(torch.isfinite(tree).all()) else None
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list | tuple) else ()
    for key, value in items:
        found = non_finite_tensor(value, f"{prefix}.{key}" if prefix else str(key))
        if found:
            return found
    return None
