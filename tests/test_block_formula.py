"""The scheme block computes its Butcher-tableau formula k_i = F_i(x + h sum_j a_ij k_j), y = x + h sum_i b_i k_i,
checked against closed forms written out here; its combiner is chosen when it is built; units declare their output
shape, and a unit that declares none still works."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from horesnet.nn import NestedUnit, SchemeBlock, SwitchOff, hooked, make_unit
from horesnet.nn.hooks import OUTPUT
from horesnet.nn.transformer import AttentionUnit
from horesnet.schemes import get_scheme


class Linear(nn.Module):
    """F(x) = W x on the channels of a (B, C, H, W) tensor, with a fixed random W."""

    def __init__(self, channels: int, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.weight = nn.Parameter(torch.randn(channels, channels, generator=g, dtype=torch.float64) / channels)

    def forward(self, x):
        return torch.einsum("oc,bchw->bohw", self.weight, x)


def _input(channels=3):
    return torch.randn(2, channels, 4, 5, generator=torch.Generator().manual_seed(7), dtype=torch.float64)


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("grad", [True, False])
def test_rk4_block_is_the_classic_rk4_formula(fused, grad):
    units = [Linear(3, seed) for seed in range(4)]
    h = 0.3
    block = SchemeBlock(get_scheme("rk4"), units, nn.Identity(), None, step=h)
    block.fused = fused
    x = _input()
    with torch.set_grad_enabled(grad), torch.no_grad():
        f1, f2, f3, f4 = units
        k1 = f1(x)
        k2 = f2(x + h / 2 * k1)
        k3 = f3(x + h / 2 * k2)
        k4 = f4(x + h * k3)
        want = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    with torch.set_grad_enabled(grad):
        got = block(x)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_tied_linear_rk4_is_the_fourth_order_taylor_polynomial():
    """y = (I + hA + (hA)^2/2 + (hA)^3/6 + (hA)^4/24) x for F(x) = Ax, the RK4 stability polynomial."""
    unit, h = Linear(3, 11), 0.7
    block = SchemeBlock(get_scheme("rk4"), [unit], nn.Identity(), None, step=h, tied=True)
    hA = h * unit.weight.detach()
    eye = torch.eye(3, dtype=torch.float64)
    poly = eye + hA + hA @ hA / 2 + hA @ hA @ hA / 6 + hA @ hA @ hA @ hA / 24
    x = _input().requires_grad_(True)
    y = block(x)
    torch.testing.assert_close(y, torch.einsum("oc,bchw->bohw", poly, x), rtol=1e-12, atol=1e-12)
    y.sum().backward()  # dy/dx summed over the outputs: the column sums of the polynomial
    torch.testing.assert_close(x.grad, poly.sum(0).view(1, 3, 1, 1).expand_as(x), rtol=1e-12, atol=1e-12)


def test_learned_step_midpoint_is_its_formula_and_h_gets_its_gradient():
    f1, f2 = Linear(3, 1), Linear(3, 2)
    block = SchemeBlock(get_scheme("midpoint"), [f1, f2], nn.Identity(), None, step=0.4, learn_step=True).double()
    x = _input()
    y = block(x)
    with torch.no_grad():
        h = block.step.item()  # float32(0.4), the parameter's value
        want = x + h * f2(x + h / 2 * f1(x))
    torch.testing.assert_close(y, want, rtol=1e-12, atol=1e-12)
    y.sum().backward()
    assert block.step.grad is not None and block.step.grad.abs() > 0


def test_the_combiner_is_chosen_when_the_block_is_built():
    rk4 = SchemeBlock(get_scheme("rk4"), [Linear(3, i) for i in range(4)], nn.Identity())
    assert rk4._combine == rk4._combine_fused  # RK4 reads k_1..k_3 twice: the fused backward pays
    euler = SchemeBlock(get_scheme("euler"), [Linear(3, 0)], nn.Identity())
    assert euler._combine == SchemeBlock._add_terms  # nothing shared: plain adds
    learned = SchemeBlock(get_scheme("rk4"), [Linear(3, 0)], nn.Identity(), learn_step=True, tied=True)
    assert learned._combine == learned._combine_learned and not learned._fusable
    chosen = rk4._combine
    rk4(_input())
    with torch.no_grad():
        rk4(_input())
    assert rk4._combine == chosen  # a call does not choose again
    rk4.fused = False
    assert rk4._combine == SchemeBlock._add_terms and not rk4._fusable
    rk4.fused = True
    assert rk4._combine == rk4._combine_fused and rk4._fusable


def test_fused_and_plain_combiners_agree_on_values_and_gradients():
    blocks = []
    for fused in (True, False):
        block = SchemeBlock(get_scheme("rk4_38"), [Linear(3, i) for i in range(4)], nn.Identity(), step=0.8)
        block.fused = fused
        x = _input().requires_grad_(True)
        y = block(x)
        (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)).sum().backward()
        blocks.append((y.detach(), x.grad, [u.weight.grad for u in block.units]))
    (y1, gx1, gw1), (y2, gx2, gw2) = blocks
    torch.testing.assert_close(y1, y2, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(gx1, gx2, rtol=1e-12, atol=1e-12)
    for a, b in zip(gw1, gw2, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_hooks_see_the_increments_then_the_output_named_y():
    assert OUTPUT == "y"  # part of the hook contract (docs/extending.md, "Block hooks")
    seen = []

    def hook(block, target, base, k):
        seen.append(target)
        return base, k

    block = SchemeBlock(get_scheme("heun"), [Linear(3, 0), Linear(3, 1)], nn.Identity())
    with hooked({block: hook}):
        block(_input())
    assert seen == [0, 1, "y"]


class Undeclared(nn.Module):
    """A plugin-style unit with no ``out_shape``: a strided 1x1 conv to ``out_channels``."""

    def __init__(self, cin, cout, stride, attributes=True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, stride=stride, bias=False)
        if attributes:
            self.out_channels, self.stride = cout, stride

    def forward(self, x):
        return self.conv(x)


@pytest.mark.parametrize("side", [7, 8])
def test_a_unit_without_a_declared_shape_falls_back_to_its_attributes(side):
    unit = Undeclared(3, 5, 2)
    block = SchemeBlock(get_scheme("euler"), [unit], None)  # plain: switched off, it passes on zeros
    x = torch.randn(2, 3, side, side)
    assert block(x).shape == unit(x).shape == (2, 5, (side + 1) // 2, (side + 1) // 2)
    with hooked({block: SwitchOff([0])}):
        y = block(x)
    assert y.shape == (2, 5, (side + 1) // 2, (side + 1) // 2) and not y.any()


def test_a_unit_without_shape_or_attributes_keeps_the_input_shape():
    unit = Undeclared(3, 3, 1, attributes=False)
    block = SchemeBlock(get_scheme("euler"), [unit], None)
    x = torch.randn(2, 3, 6, 6)
    with hooked({block: SwitchOff([0])}):
        assert block(x).shape == x.shape


def test_declared_output_shapes():
    conv = make_unit("basic", 4, 8, 2)
    assert conv.out_shape((3, 4, 9, 10)) == (3, 8, 5, 5)
    assert conv(torch.zeros(3, 4, 9, 10)).shape == (3, 8, 5, 5)
    inner = SchemeBlock(get_scheme("midpoint"), [make_unit("basic", 4, 8, 2), make_unit("basic", 8, 8, 1)], None)
    nested = NestedUnit(inner)
    assert nested.out_shape((3, 4, 9, 10)) == (3, 8, 5, 5)
    with hooked({inner: SwitchOff([0, 1])}):  # every inner increment off: the nested unit gives zeros of its shape
        out = nested(torch.randn(3, 4, 9, 10))
    assert out.shape == (3, 8, 5, 5) and not out.any()
    attn = AttentionUnit(8, heads=2)
    assert attn.out_shape(torch.Size((2, 5, 8))) == attn(torch.randn(2, 5, 8)).shape == (2, 5, 8)
