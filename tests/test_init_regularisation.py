"""Residual-branch initialisation and regularisation for every scheme (docs/design.md, "Residual scale"):
``zero_init_last`` (Goyal et al. 2017), a learnable step starting at 0 (ReZero / SkipInit) and stochastic depth
``drop_path_rate`` (Huang et al. 2016).

References: the shortcut path written out by hand (every block = post(shortcut(x))), and for drop-path the
undropped output of a linear network, which the mean over many independently dropped samples must match.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from horesnet import ConfigError, build_model, get_scheme, list_schemes
from horesnet.nn import DropPath, SchemeBlock, list_placements, register_unit

from ._analysis_helpers import forward_without, smallest_depth

START_AT_SHORTCUT = {"zero_init_last": dict(zero_init_last=True), "rezero": dict(learn_step=True, step=0.0)}


@pytest.mark.parametrize("option", list(START_AT_SHORTCUT))
@pytest.mark.parametrize("scheme", list_schemes("rk"))
def test_the_network_starts_as_its_shortcut_path(scheme, option):
    torch.manual_seed(0)
    model = build_model(block=scheme, depth=smallest_depth(scheme), width=0.25, **START_AT_SHORTCUT[option])
    x = torch.randn(2, 3, 8, 8)
    shortcut_path = forward_without(model, [b for _, b, _ in model.blocks()])
    for mode in (True, False):  # batch statistics and running statistics alike
        model.train(mode)
        with torch.no_grad():
            assert torch.equal(model(x), shortcut_path(x))


@pytest.mark.parametrize("placement", list_placements())
def test_zero_init_last_silences_every_placement(placement):
    model = build_model(block="rk4", depth=32, width=0.25, placement=placement, zero_init_last=True).eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(model(x), forward_without(model, [b for _, b, _ in model.blocks()])(x))


def test_rezero_steps_get_a_gradient_and_leave_zero():
    model = build_model(block="midpoint", depth=20, width=0.25, learn_step=True, step=0.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    F.cross_entropy(model(torch.randn(4, 3, 8, 8)), torch.tensor([0, 1, 2, 3])).backward()
    assert all(s.grad is not None and s.grad.abs() > 0 for s in model.learnable_steps)
    opt.step()
    assert all(s.item() != 0.0 for s in model.learnable_steps)


def linear_block(scheme: str, rate: float, channels: int = 2) -> SchemeBlock:
    """A block of ``scheme`` whose units are bias-free 1x1 convs (linear maps), identity shortcut, no post."""
    gen = torch.Generator().manual_seed(1)
    units = []
    for _ in range(get_scheme(scheme).increments):
        conv = nn.Conv2d(channels, channels, 1, bias=False).double()
        with torch.no_grad():
            conv.weight.copy_(0.5 * torch.randn(channels, channels, 1, 1, generator=gen, dtype=torch.float64))
        units.append(conv)
    block = SchemeBlock(get_scheme(scheme), units, nn.Identity(), None, step=0.8)
    block.hook = DropPath([rate] * len(units))
    return block


@pytest.mark.parametrize("scheme", list_schemes("rk"))
def test_drop_path_expectation_is_the_undropped_output_of_a_linear_block(scheme):
    torch.manual_seed(0)
    block = linear_block(scheme, rate=0.3)
    x = torch.randn(1, 2, 1, 1, dtype=torch.float64)
    block.eval()
    with torch.no_grad():
        undropped = block(x)
        block.train()
        samples = block(x.expand(20000, -1, -1, -1).contiguous())
    mean, sem = samples.mean(0), samples.std(0) / samples.shape[0] ** 0.5
    assert (samples.std(0) > 0).all(), "nothing was dropped"
    assert ((mean - undropped[0]).abs() <= 4.5 * sem).all(), (mean, undropped[0], sem)


def test_a_dropped_increment_is_zero_wherever_it_is_used():
    """Midpoint (A21 = 1/2, b = (0, 1), h = 0.8), each increment dropped with p = 1/2: per sample y - x is 0 (k_2
    dropped), 2h F2(x) (k_1 dropped, also from F2's input) or 2h F2(x + 2 (h/2) F1(x)) (both kept, rescaled)."""
    block = linear_block("midpoint", rate=0.5)
    f1, f2 = block.units
    x = torch.randn(400, 2, 1, 1, dtype=torch.float64)
    torch.manual_seed(3)
    with torch.no_grad():
        y = block(x)
        patterns = [torch.zeros_like(x), 2 * 0.8 * f2(x), 2 * 0.8 * f2(x + 2 * 0.4 * f1(x))]
        match = torch.stack([((y - x) - p).abs().amax(dim=(1, 2, 3)) < 1e-12 for p in patterns])
    assert match.any(0).all(), "a sample matched none of the three drop patterns"
    assert match.sum(1).min() > 50, "each drop pattern should occur (expected 200, 100, 100 of 400)"


@pytest.mark.parametrize("scheme", list_schemes("rk"))
def test_every_scheme_trains_with_drop_path(scheme):
    torch.manual_seed(0)
    model = build_model(block=scheme, depth=smallest_depth(scheme), width=0.25, drop_path_rate=0.3)
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
    out = model(x)
    assert not torch.equal(out, model(x)), "training forward passes should draw different drops"
    F.cross_entropy(out, y).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    rates = [r for _, b, _ in model.blocks() for r in b.hook.rates]
    n = len(rates)
    assert rates == pytest.approx([0.3 * (i + 1) / n for i in range(n)])  # linear decay to the last increment


def test_drop_path_and_zero_init_refuse_what_they_cannot_do():
    with pytest.raises(ConfigError, match="drop_path_rate"):
        build_model(block="ode", depth=8, norm="group", drop_path_rate=0.1)
    with pytest.raises(ConfigError, match="drop_path_rate"):
        build_model(block="euler", depth=20, shortcut="plain", drop_path_rate=0.1)

    class Plain(nn.Conv2d):
        def __init__(self, cin, cout, stride, options):
            super().__init__(cin, cout, 3, stride, 1)

    register_unit("test_no_zero_init", Plain, convs=1, overwrite=True)
    with pytest.raises(ConfigError, match="zero_init_last"):
        build_model(unit="test_no_zero_init", depth=11, zero_init_last=True)
