"""Tests of horesnet.models: parameter and multiply-add counts, the equal-depth layout, introspection, bad input.

Expected values come from outside the code under test: He et al. 2015 (CIFAR parameter counts, Sec. 4.2;
ImageNet multiply-adds, Table 1), torchvision's published ResNet parameter counts and its ResNet-50 (V1.5)
GFLOPS, the CIFAR ResNet-56/110 multiply-adds quoted throughout the pruning literature (125.49M / 252.89M,
e.g. Lin et al., HRank, CVPR 2020), and conv-weight arithmetic done by hand. Structural facts (address
order, downsampling) are observed with forward hooks rather than read back from the model's metadata.
"""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import horesnet
from horesnet import ConfigError, build_model, count_macs, count_params, get_scheme, list_schemes, plan_layout
from horesnet.nn import make_unit
from horesnet.schemes import SchemeError

from ._analysis_helpers import cifar_depth, smallest_depth

SCHEMES = list_schemes("rk")
UNITS = ("basic", "bottleneck")
PLACEMENTS = ("original", "bn_after_add", "relu_before_add", "relu_only_preact", "full_preact", "preact_relu_after_add")


def stages_of(scheme: str) -> int:
    return get_scheme(scheme).increments


# ------------------------------------------------------------------------------------ parameter counts
@pytest.mark.parametrize(
    "depth, params",
    [(20, 269_722), (32, 464_154), (44, 658_586), (56, 853_018), (110, 1_727_962)],
)
def test_cifar_param_counts_match_he_et_al_2015(depth, params):
    model = build_model(arch="cifar", depth=depth, shortcut="A", num_classes=10)
    assert count_params(model) == params
    assert sum(p.numel() for p in model.parameters()) == params  # count_params is a plain sum


def test_cifar_resnet1202_has_19_4m_params():
    model = build_model(arch="cifar", depth=1202, shortcut="A", num_classes=10)
    assert abs(count_params(model) - 19.4e6) <= 0.05e6


@functools.cache
def imagenet_model(depth: int, stride_in_3x3: bool = False):
    return build_model(arch="imagenet", depth=depth, shortcut="B", num_classes=1000, stride_in_3x3=stride_in_3x3)


@pytest.mark.parametrize(
    "depth, params, gmacs",
    [(18, 11_689_512, 1.8), (34, 21_797_672, 3.6), (50, 25_557_032, 3.8), (101, 44_549_160, 7.6),
     (152, 60_192_808, 11.3)],
)
def test_imagenet_params_match_torchvision_and_macs_match_paper_table1(depth, params, gmacs):
    model = imagenet_model(depth)
    assert count_params(model) == params
    macs = count_macs(model, (3, 224, 224))
    assert abs(macs / (gmacs * 1e9) - 1) <= 0.03, macs


def test_imagenet_resnet50_v15_same_params_more_macs():
    v1, v15 = imagenet_model(50), imagenet_model(50, True)
    assert count_params(v15) == 25_557_032
    macs_v1, macs_v15 = count_macs(v1, (3, 224, 224)), count_macs(v15, (3, 224, 224))
    assert macs_v15 > macs_v1
    assert abs(macs_v15 / 4.09e9 - 1) <= 0.03, macs_v15  # torchvision: ResNet50_Weights.IMAGENET1K_V1 4.09 GFLOPS


@pytest.mark.parametrize("depth, mmacs", [(56, 125.49), (110, 252.89)])
def test_cifar_macs_match_literature(depth, mmacs):
    assert abs(count_macs(build_model(depth=depth), (3, 32, 32)) / 1e6 - mmacs) < 0.01


def conv_weights(module: nn.Module) -> int:
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, nn.Conv2d))


def test_unit_conv_weight_counts():
    # bottleneck 256 -> 64 -> 64 -> 256: 256*64 + 64*64*9 + 64*256; basic: 2 * 256*256*9
    assert conv_weights(make_unit("bottleneck", 256, 256)) == 69_632
    assert conv_weights(make_unit("basic", 256, 256)) == 1_179_648
    bottleneck = make_unit("bottleneck", 256, 256)
    assert [tuple(c.weight.shape) for c in bottleneck.convs] == [(64, 256, 1, 1), (64, 64, 3, 3), (256, 64, 1, 1)]


# ----------------------------------------------------------------------------------- equal-depth rule
@pytest.mark.parametrize("scheme", SCHEMES)
def test_equal_depth_means_equal_params_and_macs(scheme):
    depth = cifar_depth(stages_of(scheme) + 2)  # per stage: Euler entry + one block + one leftover unit
    euler = build_model(depth=depth, block="euler")
    model = build_model(depth=depth, block=scheme)
    assert count_params(model) == count_params(euler)
    assert count_macs(model, (3, 8, 8)) == count_macs(euler, (3, 8, 8))


@pytest.mark.parametrize("scheme", SCHEMES)
def test_learn_step_adds_one_scalar_per_block(scheme):
    depth = cifar_depth(stages_of(scheme) + 2)
    euler = count_params(build_model(depth=depth, block="euler"))
    model = build_model(depth=depth, block=scheme, learn_step=True, step=0.5)
    # euler: 3 blocks per stage; others: entry + one scheme block + one leftover Euler block per stage
    assert count_params(model) - euler == 3 * 3
    steps = [p for name, p in model.named_parameters() if name.split(".")[-1] == "step"]
    assert len(steps) == 9
    assert all(p.numel() == 1 and p.item() == 0.5 for p in steps)


@pytest.mark.parametrize("scheme", [s for s in SCHEMES if stages_of(s) > 1])
def test_tied_saves_exactly_the_shared_units(scheme):
    s = stages_of(scheme)
    depth = smallest_depth(scheme)  # one scheme block per stage, widths 16/32/64
    untied, tied = build_model(depth=depth, block=scheme), build_model(depth=depth, block=scheme, tied=True)
    unit_params = lambda c: 2 * 9 * c * c + 2 * 2 * c  # two 3x3 convs + two BN (weight, bias)
    assert count_params(untied) - count_params(tied) == (s - 1) * sum(unit_params(c) for c in (16, 32, 64))
    # the shared unit runs once per increment, so the multiply-adds stay those of the untied block
    assert count_macs(tied, (3, 8, 8)) == count_macs(untied, (3, 8, 8))


# ------------------------------------------------------------------- forward/backward of every variant
def check_forward_backward(model: nn.Module, x: torch.Tensor, num_classes: int = 10):
    model.train()
    out = model(x)
    assert out.shape == (x.shape[0], num_classes)
    assert torch.isfinite(out).all()
    loss = F.cross_entropy(out, torch.arange(x.shape[0]) % num_classes)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("unit", UNITS)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_scheme_unit_placement_trains(scheme, unit, placement):
    model = build_model(depth=smallest_depth(scheme, unit), block=scheme, unit=unit, placement=placement,
                        width=0.25)
    check_forward_backward(model, torch.randn(2, 3, 8, 8))


VARIANTS = {
    "ode_group": dict(block="ode", norm="group", depth=14),
    "ode_adjoint": dict(block="ode", norm="group", depth=8, ode_adjoint=True),
    "ode_rk4": dict(block="ode", depth=8, ode_method="rk4"),
    "nested_rk4_midpoint": dict(block="rk4", inner="midpoint", depth=56),
    "tied_rk4": dict(block="rk4", tied=True, depth=32),
    "tied_rk4_group": dict(block="rk4", tied=True, norm="group", depth=32),
    "learn_step_rk4": dict(block="rk4", learn_step=True, step=0.5, depth=32),
    "learn_step_nested": dict(block="midpoint", inner="heun", learn_step=True, depth=32),
    "shortcut_B": dict(block="midpoint", shortcut="B", depth=20),
    "shortcut_C": dict(block="midpoint", shortcut="C", depth=20),
    "entry_scheme": dict(block="rk4", entry="scheme", depth=26),
    "entry_scheme_nested": dict(block="midpoint", entry="scheme", inner="midpoint", depth=26),
    "plain_euler": dict(block="euler", shortcut="plain", depth=20),
    "stem_stride_2": dict(block="rk3", stem_stride=2, depth=26),
    "stages_list": dict(block="heun", stages=[4, 3, 3]),
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_model_variants_train(name):
    model = build_model(width=0.25, **VARIANTS[name])
    check_forward_backward(model, torch.randn(2, 3, 8, 8))
    if "learn_step" in name:
        assert model.learnable_steps and all(p.grad is not None for p in model.learnable_steps)


def test_in_channels_and_num_classes():
    model = build_model(depth=20, block="midpoint", width=0.25, in_channels=1, num_classes=7)
    check_forward_backward(model, torch.randn(2, 1, 8, 8), num_classes=7)


def test_tiny_imagenet_family_trains():
    model = build_model(arch="imagenet", stages=[1, 3, 2, 1], unit="bottleneck", block="midpoint", width=0.25,
                        num_classes=5)
    check_forward_backward(model, torch.randn(2, 3, 32, 32), num_classes=5)


# ------------------------------------------------------------------------------------------ layout rules
def block_tuples(stage):
    return [(b.scheme, b.units, b.entry, b.leftover) for b in stage.blocks]


def test_layout_rk4_depth56_is_entry_plus_two_rk4_blocks():
    layout = plan_layout(depth=56, block="rk4")
    assert layout.units_per_stage == (9, 9, 9)
    assert layout.leftovers == 0
    for stage in layout.stages:
        assert block_tuples(stage) == [("euler", 1, True, False), ("rk4", 4, False, False),
                                       ("rk4", 4, False, False)]
    model = build_model(depth=56, block="rk4", width=0.25)
    kinds = [(address, block.scheme.name, len(block.units)) for address, block, _ in model.blocks()]
    assert kinds == [(f"s{s}.b{b}", name, n) for s in (1, 2, 3)
                     for b, name, n in ((1, "euler", 1), (2, "rk4", 4), (3, "rk4", 4))]


def test_layout_rk4_depth62_has_one_leftover_euler_per_stage():
    layout = plan_layout(depth=62, block="rk4")
    assert layout.units_per_stage == (10, 10, 10)
    assert layout.leftovers == 3
    for stage in layout.stages:
        assert block_tuples(stage) == [("euler", 1, True, False), ("rk4", 4, False, False),
                                       ("rk4", 4, False, False), ("euler", 1, False, True)]
    assert "leftover" in layout.describe()
    with pytest.raises(ConfigError) as err:
        plan_layout(depth=62, block="rk4", strict=True)
    assert "56" in str(err.value) and "80" in str(err.value)
    with pytest.raises(ConfigError):
        build_model(depth=62, block="rk4", strict=True)
    assert plan_layout(depth=56, block="rk4", strict=True).leftovers == 0


def test_layout_rk8_needs_depth_92():
    with pytest.raises(ConfigError) as err:
        build_model(depth=56, block="rk8")
    assert "92" in str(err.value) and "rk8" in str(err.value)
    layout = plan_layout(depth=92, block="rk8")
    assert layout.units_per_stage == (15, 15, 15)
    assert [block_tuples(s) for s in layout.stages] == [[("euler", 1, True, False), ("rk8", 14, False, False)]] * 3


def test_layout_impossible_depth_names_valid_depths():
    with pytest.raises(ConfigError) as err:
        plan_layout(depth=57, block="rk4")
    message = str(err.value)
    assert "57" in message and "56" in message and "62" in message


def test_layout_explicit_stages_override_depth():
    layout = plan_layout(stages=[10, 9, 9], depth=20)
    assert layout.depth == 58 and layout.units_per_stage == (10, 9, 9)
    model = build_model(stages=[10, 9, 9], block="rk4", width=0.25)
    assert model.layout.depth == 58
    assert len(list(model.units())) == 28
    # the paper's ResNet-30: 2E+2 convs with E = 14 units
    assert plan_layout(stages=[5, 5, 4]).depth == 30


def test_layout_nested_rk4_of_midpoint_holds_8_units():
    layout = plan_layout(depth=56, block="rk4", inner="midpoint")
    for stage in layout.stages:
        assert [(b.scheme, b.units, b.inner) for b in stage.blocks] == [("euler", 1, None), ("rk4", 8, "midpoint")]
    model = build_model(depth=56, block="rk4", inner="midpoint", width=0.25)
    in_block = [address for address, _, _ in model.units() if address.startswith("s1.b2.")]
    assert len(in_block) == 8
    assert len(list(model.units())) == 27
    # the untied nested net has the parameters of the plain ResNet-56 (shortcut A: no extra parameters)
    assert count_params(build_model(depth=56, block="rk4", inner="midpoint")) == 853_018


def test_layout_entry_scheme_puts_stride_in_first_scheme_unit():
    model = build_model(depth=62, block="rk4", entry="scheme", width=0.25)
    info = {address: i for address, _, i in model.units()}
    assert info["s2.b1.u1"].downsampling and info["s2.b1.u1"].entry
    assert info["s2.b1.u1"].scheme == "rk4"
    assert not info["s2.b1.u2"].downsampling
    blocks = {address: block for address, block, _ in model.blocks()}
    first = blocks["s2.b1"]
    assert first.scheme.name == "rk4"
    assert first.unit(0).convs[0].stride == (2, 2)
    assert (first.unit(0).convs[0].in_channels, first.unit(0).convs[0].out_channels) == (4, 8)
    assert all(first.unit(i).convs[0].stride == (1, 1) for i in (1, 2, 3))
    assert len(list(model.units())) == 30


def test_layout_ode_is_not_equal_depth():
    assert plan_layout(depth=56, block="ode").equal_depth is False
    assert plan_layout(depth=56, block="rk4").equal_depth is True
    assert build_model(depth=20, block="ode", width=0.25).layout.equal_depth is False


def test_ode_layout_describes_the_units_it_builds():
    # docs/design.md: each stage of block=ode is its entry block plus ONE odeint of one unit, i.e. 2 units per
    # stage whatever the depth; the layout (and so `horesnet.info`'s unit/conv-layer/depth lines) must agree
    model = build_model(depth=56, block="ode", width=0.25)
    units = list(model.units())
    assert len(units) == 6
    assert sum(model.layout.units_per_stage) == len(units)


# ---------------------------------------------------------------------------------------- introspection
UNIT_NETS = {
    "rk4_leftovers": (dict(block="rk4", depth=62), 30),
    "nested": (dict(block="rk4", inner="midpoint", depth=56), 27),
    "bottleneck_midpoint": (dict(block="midpoint", unit="bottleneck", depth=29), 9),
    "entry_scheme": (dict(block="rk4", entry="scheme", depth=62), 30),
    "rk8": (dict(block="rk8", depth=92), 45),
}


@pytest.mark.parametrize("name", list(UNIT_NETS))
def test_units_are_unique_in_forward_order_with_correct_flags(name):
    kwargs, n_units = UNIT_NETS[name]
    model = build_model(width=0.25, **kwargs).eval()
    units = list(model.units())
    addresses = [address for address, _, _ in units]
    assert len(set(addresses)) == len(addresses) == n_units == sum(model.layout.units_per_stage)
    assert len({id(module) for _, module, _ in units}) == n_units  # untied: one module per unit

    calls = []
    handles = [module.register_forward_hook(
        lambda m, inp, out, address=address: calls.append((address, tuple(inp[0].shape), tuple(out.shape))))
        for address, module, _ in units]
    try:
        with torch.no_grad():
            model(torch.randn(2, 3, 8, 8))
    finally:
        for h in handles:
            h.remove()
    assert [c[0] for c in calls] == addresses

    for (address, in_shape, out_shape), (_, _, info) in zip(calls, units, strict=True):
        parts = address.split(".")
        assert (info.stage, info.block, info.increment) == (int(parts[0][1:]), int(parts[1][1:]), int(parts[2][1:]))
        assert info.entry == (info.block == 1), address
        assert info.downsampling == (in_shape != out_shape), address
    downsampling = [address for (address, i, o) in calls if i != o]
    # stage 1 keeps 16*width channels for basic units; bottlenecks widen 4 -> 16 there
    assert len(downsampling) == (3 if kwargs.get("unit") == "bottleneck" else 2)


def test_forward_features_then_head_equals_forward():
    model = build_model(depth=20, block="midpoint", width=0.25).eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape == (2, 16, 2, 2)
        torch.testing.assert_close(model.forward_head(features), model(x), rtol=0, atol=0)
        assert model.forward_head(features, pre_logits=True).shape == (2, 16)
        assert model.num_features == 16


# -------------------------------------------------------------------------------------------- bad input
BAD = [
    (dict(block="foo"), "foo", "rk4"),
    (dict(unit="foo"), "foo", "bottleneck"),
    (dict(placement="foo"), "foo", "full_preact"),
    (dict(shortcut="projection"), "projection", "plain"),
    (dict(arch="foo"), "foo", "imagenet"),
    (dict(entry="foo"), "foo", "scheme"),
    (dict(norm="layer"), "layer", "group"),
    (dict(block="rk4", inner="foo"), "foo", "midpoint"),
    (dict(depth=57), "57", "56"),
    (dict(unit="bottleneck", depth=57), "57", "56"),  # 9n+2: 56 and 65 are the nearest valid depths
    (dict(arch="imagenet", depth=20), "20", "18"),
    (dict(block="rk8", depth=56), "rk8", "92"),
    (dict(shortcut="plain", block="rk4"), "rk4", "euler"),
    (dict(tied=True, entry="scheme", block="rk4"), "scheme", "euler"),
    (dict(width=-1), "width=-1", "> 0"),
    (dict(step=-0.5), "-0.5", ">= 0"),
    (dict(stem_stride=0), "stem_stride=0", ">= 1"),
    (dict(in_channels=True), "in_channels=True", "an integer"),
    (dict(ode_rtol=1e-12, block="ode"), "1e-12", "1e-08"),
    (dict(step=0), "step=0", "learn_step=true"),
    (dict(num_classes=-1), "-1", ">= 0 (0: no classifier)"),  # 0 is timm's headless network
    (dict(num_classes=2.5), "2.5", ">= 0"),
    (dict(global_pool="max"), "max", "'avg', ''"),
    (dict(block="ode", ode_method="foo"), "foo", "dopri5"),
    (dict(stages=[10, 9]), "[10, 9]", "3"),
    (dict(stages=["a", 9, 9]), "'a'", "integers each >= 1"),
    (dict(stages=[9.5, 9, 9]), "9.5", "integers each >= 1"),  # a fractional unit count must not be truncated silently
]


@pytest.mark.parametrize("kwargs, bad, valid", BAD, ids=[str(k) for k, _, _ in BAD])
def test_bad_input_raises_config_error(kwargs, bad, valid):
    with pytest.raises(ConfigError) as err:
        build_model(**{"width": 0.25, **kwargs})
    assert isinstance(err.value, ValueError)
    message = str(err.value)
    assert bad in message and valid in message, message


def test_model_config_from_options_is_the_one_validated_form():
    """build_model builds from ModelConfig.from_options: defaults filled in, the family's shortcut resolved, stages a
    list, every option checked; the network's config is that ModelConfig's dict."""
    from horesnet.models import ModelConfig

    c = ModelConfig.from_options({"arch": "imagenet", "stages": (1, 1, 1, 1), "shortcut": None})
    assert (c.shortcut, c.stages, c.block) == ("B", [1, 1, 1, 1], "euler")
    assert ModelConfig.from_options({}).shortcut == "A"
    assert ModelConfig.from_options({"shortcut": "c"}).shortcut == "c"  # kept as given; the factory normalises it
    with pytest.raises(ConfigError, match="valid options: arch, depth"):
        ModelConfig.from_options({"nope": 1})
    with pytest.raises(ConfigError, match="step must be a finite number >= 0"):
        ModelConfig.from_options({"step": -1})
    model = build_model(depth=8, width=0.25, stages=(1, 1, 1), shortcut="b")
    assert model.config == ModelConfig.from_options(dict(depth=8, width=0.25, stages=(1, 1, 1), shortcut="b")).as_dict()


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)
    assert issubclass(SchemeError, ConfigError)
    assert horesnet.ConfigError is ConfigError


@pytest.mark.parametrize("A, where", [([[0.5, 0.0], [0.5, 0.0]], "A[1,1]"), ([[0.0, 1.0], [0.5, 0.0]], "A[1,2]")])
def test_register_non_strictly_lower_triangular_tableau_fails(A, where, scheme_registry_guard):
    with pytest.raises(SchemeError) as err:
        horesnet.register_scheme("my_implicit", A, [0.5, 0.5])
    assert isinstance(err.value, ConfigError)
    assert where in str(err.value) and "lower triangular" in str(err.value)
    assert "my_implicit" not in list_schemes("rk")


def test_registered_scheme_is_usable_for_models(scheme_registry_guard):
    # SSPRK3 (Shu & Osher 1988): a 3-stage, third-order method not among the built-ins
    horesnet.register_scheme("my_ssprk3", [[0, 0, 0], [1, 0, 0], [0.25, 0.25, 0]], [1 / 6, 1 / 6, 2 / 3])
    assert "my_ssprk3" in horesnet.list_blocks()
    model = build_model(depth=26, block="my_ssprk3")
    assert count_params(model) == count_params(build_model(depth=26))
    assert [block.scheme.name for _, block, _ in model.blocks()][:2] == ["euler", "my_ssprk3"]
    check_forward_backward(build_model(depth=26, block="my_ssprk3", width=0.25), torch.randn(2, 3, 8, 8))
