"""Multistep schemes over Transformer units (block=lm|momentum, arch=transformer): one block of every unit, one
unit per step, checked against the recurrence run by hand with the same units, in float64."""

from __future__ import annotations

import pytest
import torch

from horesnet.errors import ConfigError
from horesnet.models import build_model
from horesnet.models.scale import residual_scale
from horesnet.nn.multistep import MultistepBlock

OPTS = dict(arch="transformer", d_model=16, heads=4, num_classes=11, context=7, causal=True)


def tokens(seed=0):
    return torch.randint(0, 11, (2, 7), generator=torch.Generator().manual_seed(seed))


def by_hand(model, x, alpha_beta):
    """x_{n+1} = a0 x_n + a1 x_{n-1} + b0 F_n(x_n), with x_{-1} = x_0 (v_0 = 0), then the final norm and head."""
    h = model.forward_stem(x)
    prev = h
    for unit in [u for _, u, _ in model.units()]:
        a0, a1, b0 = alpha_beta
        h, prev = a0 * h + a1 * prev + b0 * unit(h), h
    return model.fc(model.final(h))


@pytest.mark.parametrize("block, coefficient, alpha_beta", [
    ("momentum", 0.9, (1.9, -0.9, 0.1)),      # x_{n+1} = x_n + gamma (x_n - x_{n-1}) + (1 - gamma) F(x_n)
    ("lm", -0.05, (1.05, -0.05, 1.0)),         # LM-ResNet: (1 - k) x_n + k x_{n-1} + F(x_n), k = -0.05
])
def test_multistep_stack_is_the_recurrence_over_alternating_units(block, coefficient, alpha_beta):
    torch.manual_seed(0)
    model = build_model(block=block, coefficient=coefficient, depth=8, **OPTS).double().eval()
    (address, stage, spec), = model.blocks()
    assert isinstance(stage, MultistepBlock) and spec.units == 8 and not spec.entry
    assert [type(u).__name__ for _, u, _ in model.units()] == ["AttentionUnit", "MLPUnit"] * 4
    assert "stage 1: 8 units = " + block + " x8" in model.layout.describe()
    x = tokens()
    torch.testing.assert_close(model(x), by_hand(model, x, alpha_beta), rtol=1e-12, atol=1e-12)


def test_momentum_at_gamma_zero_is_the_euler_stack():
    torch.manual_seed(0)
    euler = build_model(block="euler", depth=8, **OPTS).double().eval()
    momentum = build_model(block="momentum", coefficient=0.0, depth=8, **OPTS).double().eval()
    for (_, a, _), (_, b, _) in zip(euler.units(), momentum.units(), strict=True):
        b.load_state_dict(a.state_dict())
    for name in ("embed", "pos", "final", "fc"):
        getattr(momentum, name).load_state_dict(getattr(euler, name).state_dict())
    x = tokens(1)
    torch.testing.assert_close(momentum(x), euler(x), rtol=0, atol=1e-13)


def test_causal_decoder_stays_causal_and_trains():
    torch.manual_seed(0)
    model = build_model(block="momentum", depth=8, **OPTS)
    x = tokens(2)
    changed = x.clone()
    changed[0, 4] = (changed[0, 4] + 1) % 11
    model.eval()
    torch.testing.assert_close(model(x)[0, :4], model(changed)[0, :4])  # positions before 4 do not see it
    model.train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(model(x).flatten(0, 1), x.roll(-1, 1).flatten())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]


def test_residual_scale_and_learned_coefficient():
    momentum = build_model(block="momentum", depth=8, **OPTS)
    assert residual_scale(momentum)["mean"] == pytest.approx(1 - sum(0.9 ** m for m in range(1, 9)) / 8)
    lm = build_model(block="lm", depth=8, **OPTS)
    assert lm.learned_coefficients() == {"s1.b1": {"k": pytest.approx(-0.05)}}
    assert sum(p.numel() for p in lm.parameters()) == sum(p.numel() for p in momentum.parameters()) + 1
    layer = build_model(block="momentum", depth=8, layout="layer", **OPTS)
    assert [type(u).__name__ for _, u, _ in layer.units()] == ["LayerUnit"] * 4


@pytest.mark.parametrize("options, words", [
    (dict(block="momentum", coefficient_per_channel=True), "coefficient_per_channel"),
    (dict(block="lm", reversible=True), "reversible=true"),
    (dict(block="momentum", tied=True, layout="layer"), "tied=true"),
    (dict(block="momentum", layout="macaron", depth=6), "holds only block='euler'"),
    (dict(block="momentum", drop_path_rate=0.1), "drop_path_rate"),
])
def test_multistep_refusals_by_name(options, words):
    with pytest.raises(ConfigError, match=words):
        build_model(**{**OPTS, "depth": 8, **options})
