"""Optimiser and learning-rate schedules (He et al. 2015, Sec. 4.2, plus cosine and one-cycle).

Weight decay is applied to conv/linear weights only: norm-layer parameters and learnable steps (with the learned
coefficients of multistep blocks) get their own settings (``norm_weight_decay``, ``step_weight_decay``; both 0 by
default), never silently the model's.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError, check_choice
from ..nn.multistep_coefficients import is_scheme_parameter

OPTIMIZERS = ("sgd", "adamw")
SCHEDULES = ("multistep", "cosine", "onecycle", "constant")
_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)


def param_groups(model: nn.Module, weight_decay: float, norm_weight_decay: float = 0.0,
                 step_weight_decay: float = 0.0) -> list[dict]:
    """Three groups: ordinary weights, norm-layer parameters, learnable steps (``*.step``) with the learned
    coefficients of multistep blocks (``horesnet.nn.multistep_coefficients.is_scheme_parameter``)."""
    norm_ids = {id(p) for m in model.modules() if isinstance(m, _NORMS) for p in m.parameters(recurse=False)}
    groups = {"weights": [], "norms": [], "steps": []}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        kind = "steps" if is_scheme_parameter(name) else "norms" if id(p) in norm_ids else "weights"
        groups[kind].append(p)
    decay = {"weights": weight_decay, "norms": norm_weight_decay, "steps": step_weight_decay}
    return [{"params": ps, "weight_decay": decay[k], "name": k} for k, ps in groups.items() if ps]


def lr_factor(step: int, total: int, schedule: str, milestones, gamma: float, warmup_steps: int,
              warmup_factor: float) -> float:
    """Multiplier of the base lr at optimiser step ``step`` of ``total`` (multistep / cosine / constant)."""
    if step < warmup_steps:
        return warmup_factor
    if schedule == "multistep":
        return gamma ** sum(step >= round(m * total) for m in milestones)
    if schedule == "cosine":
        t = (step - warmup_steps) / max(1, total - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))
    return 1.0


def build_optimizer(model: nn.Module, cfg: dict, total_steps: int):
    """Lightning's ``configure_optimizers`` return value for the ``optim`` config group."""
    check_choice("optim.name", cfg.get("name", "sgd"), OPTIMIZERS)
    check_choice("optim.schedule", cfg.get("schedule", "multistep"), SCHEDULES)
    lr = float(cfg.get("lr", 0.1))
    if not lr > 0:
        raise ConfigError(f"optim.lr must be > 0, got {lr!r}.")
    milestones = list(cfg.get("milestones", (0.5, 0.75)))
    if any(not 0 < m < 1 for m in milestones):
        raise ConfigError(f"optim.milestones are fractions of training in (0, 1), got {milestones!r}.")
    groups = param_groups(model, float(cfg.get("weight_decay", 1e-4)), float(cfg.get("norm_weight_decay", 0.0)),
                          float(cfg.get("step_weight_decay", 0.0)))
    if cfg.get("name", "sgd") == "sgd":
        opt = torch.optim.SGD(groups, lr=lr, momentum=float(cfg.get("momentum", 0.9)),
                              nesterov=bool(cfg.get("nesterov", False)))
    else:
        opt = torch.optim.AdamW(groups, lr=lr)
    total = max(1, int(total_steps))
    if cfg.get("schedule") == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total,
                                                    pct_start=float(cfg.get("pct_start", 0.3)))
    else:
        warmup_steps = int(cfg.get("warmup_steps") or 0)
        warmup_factor = float(cfg.get("warmup_lr") or lr) / lr
        args = (total, cfg.get("schedule", "multistep"), milestones, float(cfg.get("gamma", 0.1)), warmup_steps,
                warmup_factor)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, *args))
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "name": "lr"}}
