"""Numerical identities of the scheme block and the ODE block, in float64.

References are independent of the code under test: torchdiffeq's fixed-grid solvers (its ``rk4`` is Kutta's
3/8 rule), torchdiffeq's adaptive solvers with the same tolerances, the ResNet block of He et al. 2015
(Eq. 1-2) written out with functional convolutions, and explicit Runge-Kutta steps written by hand.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchdiffeq import odeint

from horesnet import build_model, get_scheme, list_schemes
from horesnet.nn import BlockHook, ODEBlock, SchemeBlock, SwitchOff

from ._analysis_helpers import DT, randomise_norms, rk_step_by_hand, tiny

TOL = 1e-12


def smooth_unit(channels: int = 3) -> nn.Module:
    """A small smooth nonlinear residual function (conv + tanh) in float64."""
    conv = nn.Conv2d(channels, channels, 3, padding=1, dtype=DT)
    with torch.no_grad():
        conv.weight.mul_(0.7)
    return nn.Sequential(conv, nn.Tanh())


def odeint_step(f: nn.Module, x: torch.Tensor, h: float, method: str, **kwargs) -> torch.Tensor:
    """One call of torchdiffeq over [0, h]; fixed-grid methods take exactly one step on this grid."""
    t = torch.tensor([0.0, h], dtype=x.dtype)
    return odeint(lambda _t, y: f(y), x, t, method=method, **kwargs)[-1]


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def tiny_model(**kwargs) -> nn.Module:
    model = tiny(**kwargs).double()
    randomise_norms(model)
    return model


def block_at(model, address: str):
    return {a: (block, spec) for a, block, spec in model.blocks()}[address]


# --------------------------------------------------------------------------- tied block == torchdiffeq
@pytest.mark.parametrize("learn_step", [False, True])
@pytest.mark.parametrize("h", [1.0, 0.375])  # steps exact in float32: a learnable step starts as a float32 scalar
@pytest.mark.parametrize("scheme, method", [("euler", "euler"), ("midpoint", "midpoint"), ("rk4_38", "rk4")])
def test_tied_block_is_one_torchdiffeq_step(scheme, method, h, learn_step):
    f, x = smooth_unit(), torch.randn(2, 3, 5, 5, dtype=DT)
    block = SchemeBlock(get_scheme(scheme), [f], nn.Identity(), None, step=h, learn_step=learn_step, tied=True)
    block.double()  # a learnable step is a parameter of the default dtype until converted, like any other
    with torch.no_grad():
        assert max_diff(block(x), odeint_step(f, x, h, method)) <= TOL


def test_classic_rk4_is_not_torchdiffeq_rk4_but_is_the_classic_rule():
    f, x, h = smooth_unit(), torch.randn(2, 3, 5, 5, dtype=DT), 0.8
    block = SchemeBlock(get_scheme("rk4"), [f], nn.Identity(), None, step=h, tied=True)
    with torch.no_grad():
        y = block(x)
        assert max_diff(y, odeint_step(f, x, h, "rk4")) > 1e-8  # torchdiffeq's rk4 is the 3/8 rule
        k1 = f(x)
        k2 = f(x + h / 2 * k1)
        k3 = f(x + h / 2 * k2)
        k4 = f(x + h * k3)
        assert max_diff(y, x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)) <= TOL


@pytest.mark.parametrize("scheme", list_schemes("rk"))
def test_untied_block_matches_hand_written_rk_step(scheme):
    tab = get_scheme(scheme)
    units = [smooth_unit() for _ in range(tab.increments)]
    shortcut = nn.Conv2d(3, 3, 1, bias=False, dtype=DT)  # a non-identity S: k_1 sees x, the others S(x)
    h, x = 0.625, torch.randn(2, 3, 4, 4, dtype=DT)
    block = SchemeBlock(tab, units, shortcut, nn.Tanh(), step=h)
    with torch.no_grad():
        expected = torch.tanh(rk_step_by_hand(tab.A, tab.b, units, x, h, sx=shortcut(x)))
        assert max_diff(block(x), expected) <= TOL
        learn = SchemeBlock(tab, units, shortcut, nn.Tanh(), step=h, learn_step=True).double()
        assert max_diff(learn(x), expected) <= TOL


# ------------------------------------------------------------------- identities inside a built network
@pytest.mark.parametrize("h", [1.0, 0.5])
@pytest.mark.parametrize("scheme, method", [("rk4_38", "rk4"), ("midpoint", "midpoint")])
def test_tied_model_block_is_torchdiffeq_step(scheme, method, h):
    # full pre-activation: post is the identity, so the block is exactly one solver step of f = its unit
    model = tiny_model(block=scheme, tied=True, depth=32, placement="full_preact", step=h)
    block, spec = block_at(model, "s2.b2")
    assert spec.scheme == scheme and not spec.entry and block.tied
    x = torch.randn(2, 8, 4, 4, dtype=DT)
    with torch.no_grad():
        assert max_diff(block(x), odeint_step(block.unit(0), x, h, method)) <= TOL


def test_tied_model_block_with_post_relu_is_relu_of_torchdiffeq_step():
    model = tiny_model(block="rk4_38", tied=True, depth=32)  # placement original: post = ReLU
    block, _ = block_at(model, "s3.b2")
    x = torch.randn(2, 16, 2, 2, dtype=DT)
    with torch.no_grad():
        assert max_diff(block(x), F.relu(odeint_step(block.unit(0), x.clone(), 1.0, "rk4"))) <= TOL


def bn(x, norm: nn.BatchNorm2d):
    return F.batch_norm(x, norm.running_mean, norm.running_var, norm.weight, norm.bias, False, 0.0, norm.eps)


def basic_f_by_hand(unit, x, stride=1):
    """conv3x3-BN-ReLU-conv3x3-BN (He et al. 2015, Fig. 5 left), from the unit's weights."""
    y = F.relu(bn(F.conv2d(x, unit.convs[0].weight, stride=stride, padding=1), unit.norms[0]))
    return bn(F.conv2d(y, unit.convs[1].weight, padding=1), unit.norms[1])


def test_untied_euler_block_is_he_et_al_eq1():
    model = tiny_model(block="euler", depth=20)
    block, spec = block_at(model, "s1.b2")
    x = torch.randn(2, 4, 8, 8, dtype=DT)
    with torch.no_grad():
        expected = F.relu(x + basic_f_by_hand(block.unit(0), x))  # y = relu(F(x, {W_i}) + x)
        assert max_diff(block(x.clone()), expected) <= TOL


def test_entry_euler_block_option_a_is_he_et_al_eq2_with_zero_padding():
    model = tiny_model(block="euler", depth=20, shortcut="A")
    block, spec = block_at(model, "s2.b1")
    assert spec.entry
    x = torch.randn(2, 4, 8, 8, dtype=DT)
    with torch.no_grad():
        sx = torch.cat([x[:, :, ::2, ::2], torch.zeros(2, 4, 4, 4, dtype=DT)], dim=1)  # subsample, pad channels
        expected = F.relu(sx + basic_f_by_hand(block.unit(0), x, stride=2))
        assert max_diff(block(x.clone()), expected) <= TOL


def test_entry_euler_block_option_b_projects():
    model = tiny_model(block="euler", depth=20, shortcut="B")
    block, _ = block_at(model, "s3.b1")
    x = torch.randn(2, 8, 4, 4, dtype=DT)
    conv, norm = block.shortcut[0], block.shortcut[1]
    assert conv.kernel_size == (1, 1) and conv.stride == (2, 2)
    with torch.no_grad():
        sx = bn(F.conv2d(x, conv.weight, stride=2), norm)
        expected = F.relu(sx + basic_f_by_hand(block.unit(0), x, stride=2))
        assert max_diff(block(x.clone()), expected) <= TOL


def test_midpoint_block_by_hand():
    model = tiny_model(block="midpoint", depth=20)
    block, spec = block_at(model, "s1.b2")
    assert spec.scheme == "midpoint" and not block.tied
    f1, f2 = block.unit(0), block.unit(1)
    assert f1 is not f2
    x = torch.randn(2, 4, 8, 8, dtype=DT)
    with torch.no_grad():
        expected = F.relu(x + basic_f_by_hand(f2, x + 0.5 * basic_f_by_hand(f1, x)))
        assert max_diff(block(x.clone()), expected) <= TOL


def test_learn_step_block_equals_fixed_step():
    f1, f2 = smooth_unit(), smooth_unit()
    mid = get_scheme("midpoint")
    learn = SchemeBlock(mid, [f1, f2], nn.Identity(), None, step=0.5, learn_step=True).double()
    fixed = SchemeBlock(mid, [f1, f2], nn.Identity(), None, step=0.5)
    x = torch.randn(2, 3, 5, 5, dtype=DT)
    y = learn(x)
    with torch.no_grad():
        assert max_diff(y, fixed(x)) <= TOL
        assert max_diff(y, x + 0.5 * f2(x + 0.25 * f1(x))) <= TOL
    assert isinstance(learn.step, nn.Parameter) and learn.step.item() == 0.5
    # d/dh sum(x + h * F2(x + h/2 * F1(x))) = sum(F2(z) + h * J_F2(z) F1(x) / 2): check against a
    # central finite difference of the hand-written formula
    y.sum().backward()
    g = lambda hh: (x + hh * f2(x + hh / 2 * f1(x))).sum().item()
    with torch.no_grad():
        fd = (g(0.5 + 1e-6) - g(0.5 - 1e-6)) / 2e-6
    assert abs(learn.step.grad.item() - fd) <= 1e-6 * max(1.0, abs(fd))


def test_learn_step_model_equals_fixed_step_model():
    fixed = tiny_model(block="rk4", depth=32, step=0.5)
    learn = build_model(width=0.25, block="rk4", depth=32, step=0.5, learn_step=True).double().eval()
    missing, unexpected = learn.load_state_dict(fixed.state_dict(), strict=False)
    assert not unexpected and missing and all(name.endswith("step") for name in missing)
    x = torch.randn(2, 3, 8, 8, dtype=DT)
    with torch.no_grad():
        assert max_diff(learn(x), fixed(x)) <= 1e-10


# --------------------------------------------------------------- block hooks: switched-off increments
def test_zeroed_euler_entry_block_is_post_of_shortcut():
    model = tiny_model(block="euler", depth=20, shortcut="A")
    block, _ = block_at(model, "s2.b1")
    x = torch.randn(2, 4, 8, 8, dtype=DT)
    expected = F.relu(torch.cat([x[:, :, ::2, ::2], torch.zeros(2, 4, 4, 4, dtype=DT)], dim=1))
    block.hook = SwitchOff({0})
    with torch.no_grad():
        assert max_diff(block(x), expected) == 0


def test_zeroed_euler_identity_block_is_post_of_input():
    model = tiny_model(block="euler", depth=20)
    block, _ = block_at(model, "s1.b2")
    x = torch.randn(2, 4, 8, 8, dtype=DT)
    expected = F.relu(x)
    block.hook = SwitchOff({0})
    with torch.no_grad():
        assert max_diff(block(x.clone()), expected) == 0


def test_zeroed_block_leaves_its_input_alone_and_backpropagates():
    """A lesioned block (Veit et al. 2016) must not write into its input, and the network must still train."""
    model = build_model(block="euler", depth=20, width=0.25)
    block, _ = block_at(model, "s1.b2")
    block.hook = SwitchOff({0})
    x = torch.randn(2, 4, 8, 8)
    x0 = x.clone()
    block(x)
    assert torch.equal(x, x0), "the zeroed block modified its input in place"
    out = model(torch.randn(2, 3, 8, 8))
    out.sum().backward()  # fails if the block's in-place post-ReLU overwrote a tensor autograd saved


@pytest.mark.parametrize("scheme, zeroed", [("midpoint", {0}), ("midpoint", {1}), ("rk4", {1}), ("rk4", {0, 3}),
                                            ("heun3", {2})])
def test_zeroed_increments_match_hand_written_step(scheme, zeroed):
    tab = get_scheme(scheme)
    units = [smooth_unit() for _ in range(tab.increments)]
    block = SchemeBlock(tab, units, nn.Identity(), None, step=0.7)
    block.hook = SwitchOff(zeroed)
    x = torch.randn(2, 3, 4, 4, dtype=DT)
    with torch.no_grad():
        assert max_diff(block(x), rk_step_by_hand(tab.A, tab.b, units, x, 0.7, zeroed=zeroed)) <= TOL


class ScaleIncrements(BlockHook):
    """Multiplies every increment by ``c`` wherever it is used: k_i -> c k_i (what drop-path does per sample)."""

    def __init__(self, c):
        self.c, self.calls = c, []

    def __call__(self, block, target, base, k):
        self.calls.append(target)
        return base, [None if kj is None else self.c * kj for kj in k]


@pytest.mark.parametrize("scheme", list_schemes("rk"))
def test_a_hook_sees_every_target_once_and_rescales_increments_everywhere(scheme):
    tab = get_scheme(scheme)
    units = [smooth_unit() for _ in range(tab.increments)]
    block = SchemeBlock(tab, units, nn.Identity(), None, step=0.7)
    hook = ScaleIncrements(0.5)
    block.hook = hook
    x = torch.randn(2, 3, 4, 4, dtype=DT)
    scaled = [lambda z, f=f: 0.5 * f(z) for f in units]
    with torch.no_grad():
        assert max_diff(block(x), rk_step_by_hand(tab.A, tab.b, scaled, x, 0.7)) <= TOL
    used = [i for i in range(tab.increments) if tab.b[i] != 0 or any(row[i] != 0 for row in tab.A)]
    assert hook.calls == used + ["y"]


# ----------------------------------------------------------------------------------------- ODE block
class Counting(nn.Module):
    def __init__(self, f):
        super().__init__()
        self.f, self.calls = f, 0

    def forward(self, t, y):
        self.calls += 1
        return self.f(y)


def test_ode_model_counts_nfe_and_matches_torchdiffeq():
    model = tiny_model(block="ode", norm="group", depth=8, ode_rtol=1e-6, ode_atol=1e-7)
    assert model.nfe == 0
    with torch.no_grad():
        model(torch.randn(2, 3, 8, 8, dtype=DT))
    ode_blocks = [block for _, block, _ in model.blocks() if isinstance(block, ODEBlock)]
    assert len(ode_blocks) == 3
    assert model.nfe > 0 and model.nfe == sum(b.nfe for b in ode_blocks)

    block = ode_blocks[1]
    assert (block.method, block.rtol, block.atol) == ("dopri5", 1e-6, 1e-7)
    x = torch.randn(2, 8, 4, 4, dtype=DT)
    func = Counting(block.func.unit)
    with torch.no_grad():
        y = block(x)
        ref = odeint(func, x, torch.tensor([0.0, 1.0], dtype=DT), rtol=1e-6, atol=1e-7, method="dopri5")[-1]
    assert max_diff(y, ref) <= TOL
    assert block.nfe == func.calls > 6  # dopri5: at least one 6-evaluation step


def test_ode_model_fixed_rk4_takes_one_step_of_four_evaluations():
    model = tiny_model(block="ode", depth=8, ode_method="rk4")
    with torch.no_grad():
        model(torch.randn(2, 3, 8, 8, dtype=DT))
    assert model.nfe == 3 * 4  # three stages, one RK4 step over [0, 1] each
    with torch.no_grad():
        model(torch.randn(2, 3, 8, 8, dtype=DT))
    assert model.nfe == 12  # nfe is per forward pass
    _, block, _ = next((a, b, s) for a, b, s in model.blocks() if isinstance(b, ODEBlock))
    assert block.nfe_total == 8
    x = torch.randn(2, 4, 8, 8, dtype=DT)
    with torch.no_grad():
        y = block(x)
        assert max_diff(y, odeint_step(block.func.unit, x, 1.0, "rk4")) <= TOL
        # torchdiffeq's rk4 is the 3/8 rule: one tied rk4_38 block with the same unit
        tied = SchemeBlock(get_scheme("rk4_38"), [block.func.unit], nn.Identity(), None, tied=True)
        assert max_diff(y, tied(x)) <= TOL
