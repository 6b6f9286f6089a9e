"""Analysis and fairness carry over to Transformer stacks: lesions per token, exact path counts, residual scale and
the matched Euler control, learnable steps, feature taps."""

from __future__ import annotations

import math

import pytest
import torch

from horesnet.analysis.common import EvalData, error_and_loss
from horesnet.analysis.lesion import lesion_single
from horesnet.analysis.paths import path_lengths
from horesnet.comparison.variants import matched_control
from horesnet.models import build_model
from horesnet.models.scale import residual_scale

V, T = 7, 6


def lm(**options):
    torch.manual_seed(0)
    return build_model(arch="transformer", d_model=16, heads=2, num_classes=V, context=T, causal=True,
                       **{"depth": 4, **options}).eval()


def data():
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, V, (5, T + 1), generator=g)
    return EvalData([(x[:3, :-1], x[:3, 1:].reshape(-1)), (x[3:, :-1], x[3:, 1:].reshape(-1))])


def test_lm_error_and_loss_are_per_token():
    model, d = lm(), data()
    err, loss = error_and_loss(model, d)
    logits = torch.cat([model(x).flatten(0, 1) for x, _ in d.batches])
    y = torch.cat([y for _, y in d.batches])
    assert d.size == 5 * T
    assert err == pytest.approx(1 - int((logits.argmax(1) == y).sum()) / y.numel())  # a fraction in [0, 1]
    assert loss == pytest.approx(torch.nn.functional.cross_entropy(logits, y).item(), rel=1e-6)


@pytest.mark.parametrize("options", [{}, {"block": "heun", "layout": "layer", "depth": 8}])
def test_lesions_reuse_the_prefix_exactly(options):
    model, d = lm(**options), data()
    fast = lesion_single(model, d, "unit", reuse_prefix=True)
    slow = lesion_single(model, d, "unit", reuse_prefix=False)
    assert [r["address"] for r in fast] == [r["address"] for r in slow]
    for a, b in zip(fast, slow, strict=True):
        assert a["error"] == pytest.approx(b["error"]) and a["loss"] == pytest.approx(b["loss"], rel=1e-6)
    assert len(fast) == 4  # alternate: A, M, A, M; layer (heun x2): four layer units


def test_path_counts_of_heun_over_layers():
    # a Heun block y = x + k1/2 + k2/2 with k2 = F2(x + k1) has paths of length 0, 1, 1, 2: (1 + z)^2 per block
    model = lm(block="heun", layout="layer", depth=8)
    assert path_lengths(model) == [math.comb(4, k) for k in range(5)]
    assert path_lengths(lm(depth=6)) == [math.comb(6, k) for k in range(7)]  # Euler: every unit skippable


def test_residual_scale_and_matched_control():
    heun = lm(block="heun", layout="layer", depth=8)
    assert residual_scale(heun)["mean"] == 0.5
    run = {"config": {**heun.config, "seed": 0, "data": {"name": "shakespeare"}},
           "model": {"residual_scale": residual_scale(heun)}}
    label, command = matched_control([run])
    assert "block=euler" in command and "step=0.5" in command and "layout=layer" in command
    control = lm(block="euler", layout="layer", depth=8, step=0.5)
    assert residual_scale(control)["mean"] == 0.5
    assert sum(p.numel() for p in control.parameters()) == sum(p.numel() for p in heun.parameters())


def test_learnable_steps_and_feature_taps():
    model = lm(block="heun", layout="layer", depth=8, learn_step=True)
    assert len(model.learnable_steps) == 2 and all(float(s.detach()) == 1.0 for s in model.learnable_steps)
    x = torch.randint(0, V, (2, T))
    final, taps = model.forward_intermediates(x)
    assert len(taps) == 3 == len(model.feature_info)
    torch.testing.assert_close(final, model.forward_features(x))
    torch.testing.assert_close(taps[-1], model.stages(model.forward_stem(x)))


def test_multiply_adds_per_sequence_by_hand(capsys):
    from horesnet.info import main
    from horesnet.models.transformer_info import count_sequence_macs

    d, t, v, layers = 16, T, V, 2
    per_token = 3 * d * d + d * d + 2 * (4 * d * d)  # qkv, projection, fc1, fc2
    want = layers * (t * per_token + 2 * t * t * d) + t * d * v
    assert count_sequence_macs(lm()) == want
    heun = lm(block="heun", layout="layer", depth=8)  # each layer unit evaluated once per block increment
    assert count_sequence_macs(heun) == 2 * want - t * d * v
    assert main(["arch=transformer", "depth=4", "d_model=16", "heads=2", "context=6", "causal=true"]) == 0
    out = capsys.readouterr().out
    assert "transformer (causal decoder)" in out and f"{want + t * d * (10 - v):,}" in out


def test_macaron_is_not_given_a_bogus_matched_control():
    from horesnet.comparison.variants import variant_flags

    def run(model, seed=0):
        return {"config": {**model.config, "seed": seed, "data": {"name": "shakespeare"}}, "_dir": "/nonexistent",
                "model": {"residual_scale": residual_scale(model), "params": 1, "units_per_stage": [1]}}

    groups = {("euler",): [run(lm(depth=6))], ("macaron",): [run(lm(depth=6, layout="macaron"))]}
    flags = variant_flags(groups)[("macaron",)]
    assert len(flags) == 1 and "by construction" in flags[0] and "train it with" not in flags[0]
