"""Traced graphs and module-based feature extraction give the eager network's numbers, for every registered scheme.

torch.fx is what timm's ``FeatureGraphNet`` and torchvision's ``create_feature_extractor`` run on: a traced graph
whose dead-code elimination drops any op whose result nobody uses. A traced network must equal the eager one --
outputs, every parameter's gradient, BatchNorm statistics -- in training and evaluation, whichever combination
path (fused with grad enabled, plain without) the trace recorded. timm's ``FeatureListNet``/``FeatureDictNet``/
``FeatureHookNet`` and torchvision's ``IntermediateLayerGetter`` instead call (or hook) the modules that
``feature_info`` names, so those modules must run. References are the eager network and taps computed by running
the stem's layers and the blocks one by one. The same checks against the real timm and torchvision:
tests/interop/.
"""

from __future__ import annotations

import copy
from contextlib import nullcontext

import pytest
import torch
from torch import nn

import horesnet
from horesnet import ConfigError
from horesnet.models import plan_layout
from horesnet.nn import SwitchOff

from ._analysis_helpers import smallest_depth

SCHEMES = horesnet.list_schemes()
SIDE = {"cifar": 8, "imagenet": 32}


def imagenet_depth(scheme: str) -> int:
    """The first of ResNet-50/101/152 whose layout holds a block of ``scheme``."""
    for depth in (50, 101, 152):
        try:
            plan_layout("imagenet", depth, scheme)
            return depth
        except ConfigError:
            continue
    raise AssertionError(f"no ImageNet depth holds a {scheme} block")


def build(scheme: str, arch: str, **kw) -> nn.Module:
    depth = smallest_depth(scheme) if arch == "cifar" else imagenet_depth(scheme)
    width = 0.25 if arch == "cifar" else 0.125
    return horesnet.build_model(block=scheme, arch=arch, depth=depth, width=width, **kw).double()


def traced(model: nn.Module, grad: bool) -> torch.fx.GraphModule:
    """``model`` traced (with grad enabled: the fused combination; without: the plain one) as feature extractors
    trace it, then dead-code eliminated as they do."""
    with nullcontext() if grad else torch.no_grad():
        graph = torch.fx.symbolic_trace(model)
    graph.graph.eliminate_dead_code()
    graph.recompile()
    return graph


def run(model: nn.Module, x: torch.Tensor, weight: torch.Tensor, seed: int = 0):
    """Output, gradient of every parameter (by name) and buffers after one forward/backward."""
    torch.manual_seed(seed)  # drop-path masks: the same draws in the same order
    out = model(x)
    (out * weight).sum().backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    return out.detach(), grads, {n: b.clone() for n, b in model.named_buffers()}


def named(name: str):
    return lambda message: f"{name}: {message}"


def assert_same(eager, graph, lesion: bool = False):
    out, grads, buffers = eager
    g_out, g_grads, g_buffers = graph
    torch.testing.assert_close(g_out, out, rtol=1e-9, atol=1e-10)
    if lesion:  # the graph holds no switched-off unit; eager, those get no gradient
        assert set(g_grads) < set(grads) and all(grads[n] is None for n in set(grads) - set(g_grads))
        grads = {n: g for n, g in grads.items() if n in g_grads}
        buffers = {n: b for n, b in buffers.items() if n in g_buffers}
    assert set(g_grads) == set(grads)
    assert all(g is not None for g in grads.values()) and all(g is not None for g in g_grads.values())
    # float64; tolerance relative to the largest gradient: some (a BatchNorm ahead of a 1x1 map) are ~0 in training
    scale = max(g.abs().max().item() for g in grads.values())
    for name, grad in grads.items():
        torch.testing.assert_close(g_grads[name], grad, rtol=1e-9, atol=1e-10 * scale, msg=named(name))
    for name, buffer in buffers.items():
        torch.testing.assert_close(g_buffers[name], buffer, rtol=1e-9, atol=1e-10, msg=named(name))


def check_trace(model: nn.Module, arch: str, seed: int = 0, lesion: bool = False):
    x = torch.randn(2, 3, SIDE[arch], SIDE[arch], dtype=torch.float64)
    weight = torch.randn(2, model.num_classes, dtype=torch.float64)
    for train in (True, False):
        for grad in (True, False):
            model.train(train)
            eager = copy.deepcopy(model)
            graph = traced(copy.deepcopy(model), grad)
            assert_same(run(eager, x, weight, seed), run(graph, x, weight, seed), lesion)


@pytest.mark.parametrize("arch", ["cifar", "imagenet"])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_traced_network_equals_eager_for_every_scheme(scheme, arch):
    torch.manual_seed(0)
    check_trace(build(scheme, arch), arch)


@pytest.mark.parametrize("scheme", ["euler", "rk4"])
def test_traced_network_with_drop_path_and_a_lesion_equals_eager(scheme):
    torch.manual_seed(0)
    model = build(scheme, "cifar", drop_path_rate=0.3, learn_step=True)
    check_trace(model, "cifar", seed=3)
    _, block, _ = list(model.blocks())[1]  # a scheme block after the entry block: switch off its last increment
    block.hook = SwitchOff({block.scheme.increments - 1})
    check_trace(model, "cifar", seed=3, lesion=True)


def reference_taps(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The stem's output and every stage's, by running the stem's layers and the blocks one by one."""
    for layer in model.stem:
        x = layer(x)
    taps = [x]
    for stage in model.stages:
        for block in stage:
            x = block(x)
        taps.append(x)
    return taps


@pytest.mark.parametrize("block,arch", [(b, "cifar") for b in horesnet.list_blocks()] +
                         [("euler", "imagenet"), ("rk4", "imagenet")])
def test_hooks_on_every_feature_info_module_fire_with_the_tap(block, arch):
    torch.manual_seed(0)
    model = build(block, arch) if block != "ode" else horesnet.build_model(block="ode", depth=8, width=0.25).double()
    model.eval()
    x = torch.randn(2, 3, SIDE[arch], SIDE[arch], dtype=torch.float64)
    seen: dict[int, list] = {i: [] for i in range(len(model.feature_info))}
    for i, info in enumerate(model.feature_info):
        model.get_submodule(info["module"]).register_forward_hook(lambda m, a, out, i=i: seen[i].append(out))
    with torch.no_grad():
        model(x)
        taps = reference_taps(model, x)
    assert [len(v) for v in seen.values()] == [1] * len(taps)  # each fires, once
    for i, tap in enumerate(taps):
        torch.testing.assert_close(seen[i][0], tap, rtol=0, atol=0)
        assert tap.shape[1] == model.feature_info[i]["num_chs"]
        assert SIDE[arch] // tap.shape[-1] == model.feature_info[i]["reduction"]


def layer_getter(module: nn.Module, return_layers: dict[str, str], flatten: bool = False) -> dict:
    """The rule of torchvision's ``IntermediateLayerGetter`` (direct children, called in order, up to the last
    asked for) and, with ``flatten``, of timm's ``FeatureDictNet(flatten_sequential=True)`` (one level of
    ``nn.Sequential`` children flattened, names ``stages.0``)."""
    layers = []
    for name, child in module.named_children():
        if flatten and isinstance(child, nn.Sequential):
            layers += [(f"{name}.{n}", c) for n, c in child.named_children()]
        else:
            layers.append((name, child))
    names = [n for n, _ in layers]
    assert set(return_layers) <= set(names), f"return layers {set(return_layers) - set(names)} are not children"
    last = max(names.index(n) for n in return_layers)

    def forward(x):
        out = {}
        for name, child in layers[:last + 1]:
            x = child(x)
            if name in return_layers:
                out[return_layers[name]] = x
        return out
    return forward


@pytest.mark.parametrize("arch", ["cifar", "imagenet"])
def test_module_based_extractors_run_the_feature_info_modules(arch):
    torch.manual_seed(0)
    model = build("rk4", arch).eval()
    x = torch.randn(2, 3, SIDE[arch], SIDE[arch], dtype=torch.float64)
    names = [info["module"] for info in model.feature_info]
    with torch.no_grad():
        taps = reference_taps(model, x)
        flat = layer_getter(model, {n: str(i) for i, n in enumerate(names)}, flatten=True)(x)  # timm's rule
        stages = layer_getter(model.stages, {n.removeprefix("stages."): n for n in names[1:]})(taps[0])
        top = layer_getter(model, {"stem": "stem", "stages": "last"})(x)  # torchvision's rule on the network
    assert list(flat) == [str(i) for i in range(len(taps))]
    for i, tap in enumerate(taps):
        torch.testing.assert_close(flat[str(i)], tap, rtol=0, atol=0)
    for i, name in enumerate(names[1:], 1):
        torch.testing.assert_close(stages[name], taps[i], rtol=0, atol=0)
    torch.testing.assert_close(top["stem"], taps[0], rtol=0, atol=0)
    torch.testing.assert_close(top["last"], taps[-1], rtol=0, atol=0)


@pytest.mark.parametrize("block", ["rk4", "ode"])
def test_torchscript_is_refused_with_the_alternatives(block):
    model = horesnet.build_model(block=block, depth=8 if block == "ode" else 32, width=0.25)
    with pytest.raises(ConfigError, match="TorchScript.*torch.fx.symbolic_trace.*torch.compile.*torch.export"):
        torch.jit.script(model)
    if block == "rk4":
        with pytest.raises(ConfigError, match="TorchScript"):
            torch.jit.script(model.stages[0][1])  # a lone block too


def test_torch_export_gives_the_eager_outputs():
    """The alternative the TorchScript refusal names."""
    torch.manual_seed(0)
    model = horesnet.build_model(block="rk4", depth=smallest_depth("rk4"), width=0.25).eval()
    x = torch.randn(2, 3, 8, 8)
    program = torch.export.export(model, (x,))
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), model(x), rtol=1e-5, atol=1e-6)
