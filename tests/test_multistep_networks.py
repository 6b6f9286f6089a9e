"""Networks of multistep blocks (docs/multistep.md, "Networks"): every registered multistep scheme builds, trains
and is introspectable; the network equals the published recurrences run by hand (Momentum ResNet's velocity form,
LM-ResNet's form, the textbook Adams-Bashforth and leapfrog steps, learned averaging) with the same units in
float64; parameters equal Euler's at equal depth plus the learned coefficients; residual scales equal the closed
forms; lesions switch F_n off; bad combinations are refused by name.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from horesnet import ConfigError, build_model, count_macs, count_params, list_schemes
from horesnet.models.scale import residual_scale
from horesnet.nn import SwitchOff, hooked
from horesnet.nn.multistep import MultistepBlock
from horesnet.training.optim import param_groups

MULTISTEP = list_schemes("multistep")
DT = torch.float64
GAMMA, K = 0.9, -0.05


def net(block: str, depth: int = 32, **kw) -> nn.Module:
    return build_model(block=block, depth=depth, width=0.25, **kw)


def randomise_norms(model: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters, so that eval-mode units are not near-identities."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=g) * 0.1)
    return model


def stage_block(model, stage: int = 2) -> MultistepBlock:
    return next(b for a, b, _ in model.blocks() if a == f"s{stage}.b2")


def stage_input(model, x, stage: int = 2):
    """The input of stage ``stage``'s multistep block: the stem, the earlier stages and the entry block."""
    h = model.stem(x)
    for s in model.stages[:stage - 1]:
        h = s(h)
    return model.stages[stage - 1][0](h)


# ------------------------------------------------------------------------------ the published recurrences
def momentum_by_hand(units, x, gamma, post=lambda z: z):
    """Sander et al. 2021: v <- gamma v + (1 - gamma) F(x), x <- x + v, v_0 = 0 (post: after each addition)."""
    v = torch.zeros_like(x)
    for f in units:
        v_new = gamma * v + (1 - gamma) * f(x)
        x_new = post(x + v_new)
        v, x = x_new - x, x_new
    return x


def lm_by_hand(units, x, k):
    """Lu et al. 2018: x_(n+1) = (1 - k) x_n + k x_(n-1) + F(x_n), x_(-1) = x_0."""
    prev = x
    for f in units:
        x, prev = (1 - k) * x + k * prev + f(x), x
    return x


def adams_bashforth_by_hand(units, x, beta):
    """x_(n+1) = x_n + sum_j beta_j F_(n-j), Euler steps while fewer than len(beta) unit outputs exist."""
    outs = []
    for f in units:
        outs.insert(0, f(x))
        x = x + (sum(b * o for b, o in zip(beta, outs, strict=False)) if len(outs) >= len(beta) else outs[0])
    return x


def leapfrog_by_hand(units, x):
    """x_1 = x_0 + F(x_0), then x_(n+1) = x_(n-1) + 2 F(x_n)."""
    prev, x = x, x + units[0](x)
    for f in units[1:]:
        x, prev = prev + 2 * f(x), x
    return x


def average_by_hand(units, x, weights):
    """x_(n+1) = sum_(j<=n) a^n_j x_(n-j) + F(x_n); ``weights[n]`` = (a^n_1..a^n_n), a^n_0 = 1 - their sum."""
    states = [x]
    for n, f in enumerate(units):
        w = weights[n]
        mixed = (1 - sum(w)) * states[n] + sum(w[j - 1] * states[n - j] for j in range(1, n + 1))
        states.append(mixed + f(states[n]))
    return states[-1]


BY_HAND = {
    "momentum": lambda units, x, blk: momentum_by_hand(units, x, GAMMA),
    "lm": lambda units, x, blk: lm_by_hand(units, x, K),
    "ab2": lambda units, x, blk: adams_bashforth_by_hand(units, x, (1.5, -0.5)),
    "ab3": lambda units, x, blk: adams_bashforth_by_hand(units, x, (23 / 12, -16 / 12, 5 / 12)),
    "leapfrog": lambda units, x, blk: leapfrog_by_hand(units, x),
    "average": lambda units, x, blk: average_by_hand(units, x, average_weights(blk)),
}


def average_weights(blk: MultistepBlock) -> list[list[float]]:
    """The learned weights, read in the documented layout: step n's n weights follow those of steps < n."""
    flat, out, at = blk.coefficients.alpha.detach().tolist(), [], 0
    for n in range(len(blk.units)):
        out.append(flat[at:at + n])
        at += n
    return out


def test_every_multistep_scheme_is_tested():
    assert set(BY_HAND) == set(MULTISTEP) == {"lm", "momentum", "ab2", "ab3", "leapfrog", "average"}


@pytest.mark.parametrize("scheme", MULTISTEP)
def test_network_equals_the_published_recurrence_by_hand(scheme):
    torch.manual_seed(0)
    model = randomise_norms(net(scheme, depth=44, placement="full_preact")).double().eval()  # 6 steps per stage
    blk = stage_block(model)
    if scheme == "average":  # away from the identity initialisation
        blk.coefficients.alpha.data.uniform_(-0.3, 0.3)
    x = torch.randn(2, 3, 8, 8, dtype=DT)
    with torch.no_grad():
        x0 = stage_input(model, x)
        expected = BY_HAND[scheme](list(blk.units), x0, blk)
        torch.testing.assert_close(blk(x0), expected, rtol=1e-12, atol=1e-12)
        # and the whole network: stem, stages (entry blocks as they are), final, head
        h = stage_input(model, x, 1)
        for s in (1, 2, 3):
            if s > 1:
                h = model.stages[s - 1][0](h)
            h = BY_HAND[scheme](list(stage_block(model, s).units), h, stage_block(model, s))
        torch.testing.assert_close(model(x), model.forward_head(model.final(h)), rtol=1e-12, atol=1e-12)


def test_per_channel_lm_and_a_given_gamma_follow_the_published_forms():
    torch.manual_seed(0)
    model = net("lm", depth=44, placement="full_preact", coefficient_per_channel=True).double().eval()
    blk = stage_block(model)
    k = torch.tensor(blk.coefficients.values()["k"], dtype=DT)
    assert k.shape == (8,) and ((-0.1 <= k) & (k <= 0)).all() and k.std() > 0  # U[-0.1, 0] (Lu et al. 2018)
    x0 = torch.randn(2, 8, 4, 4, dtype=DT)
    with torch.no_grad():
        torch.testing.assert_close(blk(x0), lm_by_hand(list(blk.units), x0, k.view(1, -1, 1, 1)), rtol=1e-12,
                                   atol=1e-12)
    model = net("momentum", depth=44, placement="full_preact", coefficient=0.99).double().eval()
    blk = stage_block(model)
    with torch.no_grad():
        torch.testing.assert_close(blk(x0), momentum_by_hand(list(blk.units), x0, 0.99), rtol=1e-12, atol=1e-12)


def test_gamma_zero_and_k_zero_are_the_euler_network_with_a_post_activation():
    """With placement=original each step ends in the ReLU after the addition, as Euler's blocks: momentum at
    gamma = 0 and LM at k = 0 are exactly the Euler network with the same weights."""
    torch.manual_seed(0)
    euler = randomise_norms(net("euler", depth=20)).double().eval()
    x = torch.randn(2, 3, 8, 8, dtype=DT)
    for kw in (dict(block="momentum", coefficient=0.0), dict(block="lm", coefficient=0.0, learn_coefficients=False)):
        other = build_model(depth=20, width=0.25, **kw).double().eval()
        ours = {a: u for a, u, _ in other.units()}
        assert len(ours) == len(list(euler.units()))
        for (_, eu, _), (_, ou, _) in zip(euler.units(), other.units(), strict=True):
            ou.load_state_dict(eu.state_dict())
        other.stem.load_state_dict(euler.stem.state_dict())
        other.fc.load_state_dict(euler.fc.state_dict())
        with torch.no_grad():
            assert torch.equal(other(x), euler(x)), kw
    model = randomise_norms(net("momentum", depth=20)).double().eval()
    blk = stage_block(model)
    x0 = torch.randn(2, 8, 4, 4, dtype=DT)
    with torch.no_grad():
        torch.testing.assert_close(blk(x0), momentum_by_hand(list(blk.units), x0, GAMMA, post=F.relu), rtol=1e-12,
                                   atol=1e-12)


# ------------------------------------------------------------------------------ build, train, introspect
@pytest.mark.parametrize("scheme", MULTISTEP)
def test_forward_backward_every_parameter_gets_a_gradient(scheme):
    torch.manual_seed(0)
    model = net(scheme, depth=20, learn_coefficients=None if scheme in ("ab2", "ab3", "leapfrog") else True)
    out = model(torch.randn(2, 3, 8, 8))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    F.cross_entropy(out, torch.tensor([1, 2])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    learned = {n for n, _ in model.named_parameters() if ".coefficients." in n}
    assert bool(learned) == (scheme in ("lm", "momentum", "average"))
    assert learned <= model.no_weight_decay()
    steps = next(g for g in param_groups(model, 1e-4) if g["name"] == "steps") if learned else {"params": []}
    assert {id(p) for p in steps["params"]} == {id(p) for n, p in model.named_parameters() if n in learned}


@pytest.mark.parametrize("scheme", MULTISTEP)
def test_parameters_are_eulers_plus_the_learned_coefficients(scheme):
    euler = net("euler", depth=56)
    model = net(scheme, depth=56)
    extra = {"lm": 3, "average": 3 * 8 * 7 // 2}.get(scheme, 0)  # one k per stage; 28 weights per 8-step stage
    assert count_params(model) == count_params(euler) + extra
    assert count_macs(model, (3, 8, 8)) >= count_macs(euler, (3, 8, 8))
    assert model.layout.units_per_stage == euler.layout.units_per_stage == (9, 9, 9)
    per_channel = net("lm", depth=56, coefficient_per_channel=True)
    assert count_params(per_channel) == count_params(euler) + 4 + 8 + 16  # width 0.25: 4/8/16 channels


def test_unit_addresses_feature_taps_and_layout_text():
    model = net("momentum", depth=32)
    addresses = [a for a, _, _ in model.units()]
    assert addresses[:6] == ["s1.b1.u1", "s1.b2.u1", "s1.b2.u2", "s1.b2.u3", "s1.b2.u4", "s2.b1.u1"]
    assert len(addresses) == 15 and [a for a, _, _ in model.blocks()] == ["s1.b1", "s1.b2", "s2.b1", "s2.b2",
                                                                          "s3.b1", "s3.b2"]
    assert "stage 2: 5 units = euler* + momentum x4 (starter: v_0 = 0 (x_-1 = x_0))" in model.layout.describe()
    assert "ab3 x4 (starter: 2 Euler steps)" in net("ab3").layout.describe()
    x = torch.randn(2, 3, 8, 8)
    model.eval()
    with torch.no_grad():
        taps = model.forward_intermediates(x, level="block", intermediates_only=True)
        assert [t.shape[1] for t in taps] == [4, 4, 4, 8, 8, 16, 16]
        assert [f["num_chs"] for f in model.feature_info] == [4, 4, 8, 16]
        torch.testing.assert_close(model.forward_head(model.final(taps[-1])), model(x))


@pytest.mark.parametrize("scheme", ["momentum", "lm", "ab2"])
def test_a_lesion_sets_f_n_to_zero_in_every_step(scheme):
    torch.manual_seed(0)
    model = randomise_norms(net(scheme, depth=32, placement="full_preact")).double().eval()
    blk = stage_block(model)
    x0 = torch.randn(2, 8, 4, 4, dtype=DT)
    off = 1  # the second unit: its output enters later steps of every scheme here
    zeroed = [f if i != off else (lambda z: torch.zeros_like(z)) for i, f in enumerate(blk.units)]
    calls = []
    blk.units[off].register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad(), hooked({blk: SwitchOff({off})}):
        got = blk(x0)
    assert not calls  # a switched-off unit is not run
    assert blk.active == (True,) * 4
    with torch.no_grad():
        torch.testing.assert_close(got, BY_HAND[scheme](zeroed, x0, blk), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------ residual scale
@pytest.mark.parametrize("scheme, weights", [
    ("momentum", [1 - GAMMA ** (8 - s + 1) for s in range(1, 9)]),  # Sander et al.'s v_0 = 0: unit s gets 1-g^(T-s+1)
    ("lm", [(1 - (-K) ** (8 - s + 1)) / (1 + K) for s in range(1, 9)]),
    ("ab2", [0.5] + [1.0] * 6 + [1.5]),
    ("ab3", [17 / 12, 1 / 12] + [1.0] * 4 + [7 / 12, 23 / 12]),
    ("leapfrog", [0.0, 2.0] * 4),
    ("average", [1.0] * 8),
])
def test_residual_scale_closed_forms(scheme, weights):
    model = net(scheme, depth=56)
    assert stage_block(model).coefficients.residual_weights() == pytest.approx(weights, abs=1e-12)
    mean = (1 + sum(weights)) / 9  # with the Euler entry unit
    assert residual_scale(model)["mean"] == pytest.approx(mean, abs=1e-12)
    if scheme == "momentum":
        assert sum(weights) / 8 == pytest.approx(0.359, abs=5e-4)  # the figure of docs/multistep.md


def test_step_scales_the_weights_and_learned_values_move_them():
    model = net("momentum", depth=56, step=0.5)
    assert residual_scale(model)["mean"] == pytest.approx((0.5 + 0.5 * sum(1 - GAMMA ** m for m in range(1, 9))) / 9)
    model = net("momentum", depth=56, learn_coefficients=True)
    blk = stage_block(model)
    with torch.no_grad():
        blk.coefficients.coefficient.fill_(-3.0)  # gamma = c + r (tanh(d + d0) - tanh(d0)), towards its lower end
    g = blk.coefficients.values()["gamma"]
    assert -1 < g < 0.9
    assert blk.coefficients.residual_weights() == pytest.approx([1 - g ** (9 - s) for s in range(1, 9)], abs=1e-12)


# ------------------------------------------------------------------------------ refusals by name
@pytest.mark.parametrize("kw, words", [
    (dict(block="momentum", inner="midpoint"), ["inner=", "momentum", "multistep"]),
    (dict(block="euler", inner="lm"), ["inner='lm'", "multistep"]),
    (dict(block="lm", tied=True), ["tied=true", "lm"]),
    (dict(block="momentum", entry="scheme"), ["entry='scheme'", "momentum"]),
    (dict(block="momentum", drop_path_rate=0.1), ["drop_path_rate", "multistep"]),
    (dict(block="momentum", shortcut="C"), ["shortcut='C'"]),
    (dict(block="momentum", coefficient=1.2), ["coefficient=1.2", "gamma", "zero-stable"]),
    (dict(block="ab2", learn_coefficients=True), ["learn_coefficients", "ab2"]),
    (dict(block="euler", coefficient=0.5), ["coefficient=0.5", "multistep blocks only"]),
    (dict(block="momentum", arch="transformer", depth=4, width=1, coefficient_per_channel=True),
     ["coefficient_per_channel", "transformer"]),
    (dict(block="momentum", depth=8), ["momentum", "Nearest valid depths"]),
])
def test_refused_by_name(kw, words):
    with pytest.raises(ConfigError) as err:
        build_model(**{"depth": 20, "width": 0.25, **kw})
    for w in words:
        assert w in str(err.value), str(err.value)


@pytest.mark.parametrize("scheme", ["momentum", "lm"])
def test_torchvision_weights_load_into_a_multistep_network(scheme):
    """The weights of an (Euler) ResNet-18 in torchvision's layout go unit by unit into a multistep ResNet-18."""
    from horesnet import load_torchvision_state_dict, to_torchvision_state_dict

    torch.manual_seed(0)
    euler = randomise_norms(build_model(arch="imagenet", depth=18, block="euler"))
    weights = to_torchvision_state_dict(euler)
    model = load_torchvision_state_dict(build_model(arch="imagenet", depth=18, block=scheme), weights)
    assert to_torchvision_state_dict(model).keys() == weights.keys()
    for (a, ue, _), (b, um, _) in zip(euler.units(), model.units(), strict=True):
        assert all(torch.equal(p, q) for p, q in zip(ue.state_dict().values(), um.state_dict().values(),
                                                     strict=True)), (a, b)
