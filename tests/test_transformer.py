"""arch=transformer: the Euler stack is torch's pre-norm Transformer, layouts are data, refusals by name.

Every expectation is computed independently of horesnet: with ``torch.nn.TransformerEncoderLayer(norm_first=True)``
whose weights were copied in, or by hand from those layers (G(x) = layer(x) - x), in float64.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from horesnet.errors import ConfigError
from horesnet.models import build_model
from horesnet.models.scale import residual_scale
from horesnet.nn import SwitchOff, hooked
from horesnet.nn.transformer import AttentionUnit, LayerUnit, MLPUnit, copy_from_torch_layer

D, H, T, V = 16, 4, 7, 11


def torch_layers(n, activation="gelu"):
    torch.manual_seed(0)
    layers = [nn.TransformerEncoderLayer(D, H, 3 * D, dropout=0.0, activation=activation, batch_first=True,
                                         norm_first=True).double().eval() for _ in range(n)]
    for layer in layers:  # non-trivial norms too
        for p in layer.parameters():
            p.data.normal_(0, 0.3)
    return layers


def units_of(model):
    return [u for _, u, _ in model.units()]


def load(model, layers, final: nn.LayerNorm, head: nn.Linear):
    """Copy torch's layers into the model's units (alternate: attn, mlp, ...; layer: one LayerUnit per layer)."""
    units = units_of(model)
    if isinstance(units[0], LayerUnit):
        for unit, layer in zip(units, layers, strict=True):
            copy_from_torch_layer(unit.attn, unit.mlp, layer)
    else:
        for i, layer in enumerate(layers):
            copy_from_torch_layer(units[2 * i], units[2 * i + 1], layer)
    model.final.load_state_dict(final.state_dict())
    model.fc.load_state_dict(head.state_dict())


def reference(layers, final, head, h, causal):
    mask = nn.Transformer.generate_square_subsequent_mask(h.shape[1], dtype=h.dtype) if causal else None
    for layer in layers:
        h = layer(h, src_mask=mask, is_causal=causal)
    h = final(h)
    return head(h if causal else h.mean(1))


@pytest.mark.parametrize("layout", ["alternate", "layer"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("activation", ["gelu", "relu"])
def test_euler_is_torch_pre_norm_transformer(layout, causal, activation):
    n = 3
    model = build_model(arch="transformer", depth=2 * n, layout=layout, d_model=D, heads=H, mlp_ratio=3,
                        num_classes=V, context=T, causal=causal, activation=activation).double().eval()
    layers = torch_layers(n, activation)
    final, head = nn.LayerNorm(D).double(), nn.Linear(D, V).double()
    nn.init.normal_(final.weight, 1, 0.2)
    load(model, layers, final, head)
    x = torch.randint(0, V, (3, T))
    h0 = model.forward_stem(x)  # embedding + positions: the input both stacks share
    got = model.forward_head(model.final(model.stages(h0)))
    want = reference(layers, final, head, h0, causal)
    assert got.shape == ((3, T, V) if causal else (3, V))
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    if causal:  # the future never reaches the past
        x2 = x.clone()
        x2[:, -1] = (x2[:, -1] + 1) % V
        torch.testing.assert_close(model(x2)[:, :-1], model(x)[:, :-1], rtol=0, atol=1e-12)


def G(layer, x):
    return layer(x) - x


def test_rk_over_layers_is_the_ode_transformer_with_the_residual_as_f():
    layers = torch_layers(4)
    model = build_model(arch="transformer", depth=8, layout="layer", block="heun", d_model=D, heads=H, mlp_ratio=3,
                        num_classes=V, context=T).double().eval()
    final, head = nn.LayerNorm(D).double(), nn.Linear(D, V).double()
    load(model, layers, final, head)
    h = torch.randn(2, T, D, dtype=torch.float64)
    want = h
    for a, b in ((layers[0], layers[1]), (layers[2], layers[3])):  # Heun: k1 = F1(x), k2 = F2(x + k1)
        k1 = G(a, want)
        k2 = G(b, want + k1)
        want = want + 0.5 * k1 + 0.5 * k2
    torch.testing.assert_close(model.stages(h), want, rtol=0, atol=1e-12)
    assert residual_scale(model)["mean"] == 0.5
    # the released code's F = layer(x) would carry the identity with weight 1 + 1/2 + 1/2 * 2 = 2.5 per block
    lin = torch.zeros(1, 1, D, dtype=torch.float64)
    assert torch.allclose(G(layers[0], lin) + lin, layers[0](lin))


def test_macaron_is_strang_splitting():
    model = build_model(arch="transformer", depth=6, layout="macaron", d_model=D, heads=H, num_classes=V,
                        context=T).double().eval()
    units = units_of(model)
    assert [type(u) for u in units] == [MLPUnit, AttentionUnit, MLPUnit] * 2
    h = torch.randn(2, T, D, dtype=torch.float64)
    want = h
    for m1, a, m2 in (units[0:3], units[3:6]):
        want = want + 0.5 * m1(want)
        want = want + a(want)
        want = want + 0.5 * m2(want)
    torch.testing.assert_close(model.stages(h), want, rtol=0, atol=1e-12)
    assert residual_scale(model)["mean"] == pytest.approx(2 / 3)


def test_rk4_alternate_groups_attention_and_mlp_units():
    model = build_model(arch="transformer", depth=8, block="rk4", d_model=D, heads=H, num_classes=V,
                        context=T).double().eval()
    assert model.layout.describe().endswith("stage 1: 8 units = rk4 x2")
    h = torch.randn(2, T, D, dtype=torch.float64)
    want = h
    units = units_of(model)
    for a1, m1, a2, m2 in (units[0:4], units[4:8]):
        k1 = a1(want)
        k2 = m1(want + 0.5 * k1)
        k3 = a2(want + 0.5 * k2)
        k4 = m2(want + k3)
        want = want + (k1 + 2 * k2 + 2 * k3 + k4) / 6
    torch.testing.assert_close(model.stages(h), want, rtol=0, atol=1e-12)


def test_lesion_deletes_one_attention_unit():
    layers = torch_layers(2)
    model = build_model(arch="transformer", depth=4, d_model=D, heads=H, mlp_ratio=3, num_classes=V,
                        context=T).double().eval()
    final, head = nn.LayerNorm(D).double(), nn.Linear(D, V).double()
    load(model, layers, final, head)
    h = torch.randn(2, T, D, dtype=torch.float64)
    blocks = {a: b for a, b, _ in model.blocks()}
    with hooked({blocks["s1.b3"]: SwitchOff([0])}):  # the second layer's attention branch
        got = model.stages(h)
    want = layers[0](h)
    want = want + layers[1]._ff_block(layers[1].norm2(want))
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_vector_tokens_and_class_token():
    model = build_model(arch="transformer", depth=2, d_model=D, heads=H, num_classes=10, context=28, embed="vector",
                        in_channels=28, pool="token")
    x = torch.randn(3, 28, 28)
    assert model(x).shape == (3, 10)
    feats = model.forward_features(x)
    assert feats.shape == (3, 29, D)
    model.reset_classifier(0)
    assert model(x).shape == (3, D)
    final, inter = model.forward_intermediates(x, indices=1)
    assert len(inter) == 1 and final.shape == feats.shape


@pytest.mark.parametrize("options, words", [
    (dict(layout="macaron", block="heun", depth=6), "holds only block='euler'"),
    (dict(depth=5), "multiple of 2"),
    (dict(layout="macaron", depth=8), "multiple of 3"),
    (dict(block="rk4", depth=2), "Nearest valid depths: 4"),
    (dict(block="rk3", depth=8, strict=True), "strict=true"),
    (dict(stages=[2]), "stages="),
    (dict(inner="heun", block="heun"), "inner="),
    (dict(tied=True, block="heun", depth=4), "layout='layer' with tied=true"),
    (dict(d_model=30, heads=4), "divisible"),
    (dict(width=2), "d_model"),
    (dict(block="ode"), "block='ode'"),
])
def test_refusals_by_name(options, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace("[", r"\[")):
        build_model(arch="transformer", **{"depth": 4, **options})


def test_transformer_units_refused_in_conv_networks():
    with pytest.raises(ConfigError, match="arch=transformer"):
        build_model(arch="cifar", depth=5, unit="attn")


def test_gradients_match_torch_layers_in_training_mode():
    layers = torch_layers(2)
    model = build_model(arch="transformer", depth=4, d_model=D, heads=H, mlp_ratio=3, num_classes=V, context=T,
                        causal=True).double().train()
    final, head = nn.LayerNorm(D).double(), nn.Linear(D, V).double()
    load(model, layers, final, head)
    for layer in layers:
        layer.train()
    h = torch.randn(2, T, D, dtype=torch.float64, requires_grad=True)
    g_ours = torch.autograd.grad(model.forward_head(model.final(model.stages(h))).square().sum(),
                                 [h, units_of(model)[1].fc1.weight])
    g_torch = torch.autograd.grad(reference(layers, final, head, h, True).square().sum(), [h, layers[0].linear1.weight])
    for a, b in zip(g_ours, g_torch, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_sinusoidal_positions_by_hand():
    import math

    model = build_model(arch="transformer", depth=2, d_model=8, heads=2, num_classes=V, context=5, pos="sinusoidal")
    table = model.pos.table
    assert not list(model.pos.parameters())
    for p, i in ((0, 0), (3, 2), (4, 6)):
        angle = p / 10000 ** (i / 8)
        assert table[p, i].item() == pytest.approx(math.sin(angle), abs=1e-6)
        assert table[p, i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)
