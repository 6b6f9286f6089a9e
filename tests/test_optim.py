"""Tests of the optimiser recipe (He et al. 2015, Sec. 4.2): parameter groups and learning-rate schedules.

Expected values come from the recipe as published (lr 0.1, /10 at 50% and 75% of training, weight decay 1e-4 on
weights only, warm-up at 0.01 for ResNet-110).
"""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from horesnet import build_model
from horesnet.cli.compose import compose
from horesnet.training.optim import build_optimizer, lr_factor

# --------------------------------------------------------------------------------------------------------------
# Optimiser recipe
# --------------------------------------------------------------------------------------------------------------


def _optim_cfg(*overrides: str) -> dict:
    return OmegaConf.to_container(compose("fit", list(overrides)).optim, resolve=True)


def _decay_of(groups: list[dict]) -> dict[int, float]:
    out = {}
    for g in groups:
        for p in g["params"]:
            assert id(p) not in out, "a parameter is in two groups"
            out[id(p)] = g["weight_decay"]
    return out


@pytest.mark.parametrize("norm", ["batch", "group"])
def test_weight_decay_groups(norm):
    model = build_model(block="midpoint", depth=20, width=0.25, learn_step=True, norm=norm)
    steps = model.learnable_steps
    assert steps, "learn_step=True must give learnable steps"
    opt = build_optimizer(model, _optim_cfg(), 100)["optimizer"]
    decay = _decay_of(opt.param_groups)
    assert set(decay) == {id(p) for p in model.parameters()}, "every parameter is optimised exactly once"
    norm_types = (nn.BatchNorm2d, nn.GroupNorm)
    norms = [p for m in model.modules() if isinstance(m, norm_types) for p in m.parameters(recurse=False)]
    convs = [m.weight for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert norms and convs
    assert all(decay[id(p)] == 0.0 for p in norms), "norm parameters must not be decayed by default"
    assert all(decay[id(p)] == 0.0 for p in steps), "learnable steps must not be decayed by default"
    assert all(decay[id(p)] == pytest.approx(1e-4) for p in convs), "conv weights get weight decay 1e-4"
    opt = build_optimizer(model, _optim_cfg("optim.step_weight_decay=5e-4", "optim.norm_weight_decay=2e-5"),
                          100)["optimizer"]
    decay = _decay_of(opt.param_groups)
    assert all(decay[id(p)] == pytest.approx(5e-4) for p in steps)
    assert all(decay[id(p)] == pytest.approx(2e-5) for p in norms)
    assert all(decay[id(p)] == pytest.approx(1e-4) for p in convs)
    assert isinstance(opt, torch.optim.SGD)
    assert all(g["momentum"] == 0.9 and g["lr"] == pytest.approx(0.1) for g in opt.param_groups)


def _lrs(cfg: dict, total: int) -> list[float]:
    """The lr used at each of ``total`` optimiser steps, by driving the real optimiser and scheduler."""
    model = nn.Linear(2, 2)
    conf = build_optimizer(model, cfg, total)
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    assert conf["lr_scheduler"]["interval"] == "step"
    lrs = []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_multistep_schedule_he_et_al():
    # 64k iterations: lr 0.1, 0.01 from 32k, 0.001 from 48k (He et al. 2015, Sec. 4.2)
    args = (64000, "multistep", [0.5, 0.75], 0.1, 0, 1.0)
    for step, factor in ((0, 1.0), (31999, 1.0), (32000, 0.1), (47999, 0.1), (48000, 0.01), (63999, 0.01)):
        assert lr_factor(step, *args) == pytest.approx(factor), step
    lrs = _lrs(_optim_cfg(), 8)
    assert lrs == pytest.approx([0.1] * 4 + [0.01] * 2 + [0.001] * 2)


def test_warmup_and_cosine_schedules():
    lrs = _lrs(_optim_cfg("optim.warmup_steps=5"), 20)
    assert lrs[:5] == pytest.approx([0.01] * 5), "ResNet-110 warm-up: lr 0.01 first"
    assert lrs[5:10] == pytest.approx([0.1] * 5), "then back to 0.1"
    assert lrs[10:15] == pytest.approx([0.01] * 5) and lrs[15:] == pytest.approx([0.001] * 5)
    lrs = _lrs(_optim_cfg("optim=cosine"), 100)
    assert lrs[0] == pytest.approx(0.1)
    assert lrs[50] == pytest.approx(0.05, rel=1e-6)
    assert lrs[-1] < 1e-3 and all(x >= y for x, y in zip(lrs, lrs[1:], strict=False))
    assert lr_factor(100, 100, "cosine", [], 0.1, 0, 1.0) == pytest.approx(0.0, abs=1e-12)
