"""The fast paths compute what the plain path computes: the fused stage combination, activation checkpointing and
``torch.compile`` give the outputs and gradients of plain autograd (docs/speed.md).

The reference is the plain autograd formulation of the block (``SchemeBlock.fused = False``), itself checked
against Runge-Kutta steps written by hand and torchdiffeq in test_block.py.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from horesnet import build_model, compile_model, get_scheme, list_schemes
from horesnet.analysis.effective import GradientRoute
from horesnet.errors import ConfigError
from horesnet.nn import SchemeBlock, SwitchOff, hooked

from ._analysis_helpers import randomise_norms

SCHEMES = list_schemes("rk")
VARIANTS = {  # beyond the plain network of each scheme
    "tied": dict(tied=True), "nested": dict(inner="midpoint"), "learn_step": dict(learn_step=True, step=0.7),
    "drop_path": dict(drop_path_rate=0.3), "zero_init_last": dict(zero_init_last=True),
}


def network(scheme: str, dtype=torch.float64, **kw) -> nn.Module:
    """Stage 1 holds a full block of ``scheme`` (entry unit, then s units), stages 2-3 one unit each."""
    s = get_scheme(scheme).increments * (2 if kw.get("inner") else 1)
    torch.manual_seed(0)
    model = build_model(block=scheme, stages=[s + 1, 1, 1], width=0.25, num_classes=3, **kw).to(dtype)
    randomise_norms(model)
    if kw.get("zero_init_last"):  # zero-initialised last BN would hide the unit from the gradient check
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() == 1 and not p.any():
                    p.normal_()
    return model


def set_fused(model: nn.Module, fused: bool) -> None:
    for m in model.modules():
        if isinstance(m, SchemeBlock):
            m.fused = fused


def loss_and_grads(model, x, y, seed=1):
    """Training-mode loss, parameter gradients, input gradient and BN buffers after one backward."""
    model.train()
    model.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    torch.manual_seed(seed)  # same drop-path masks
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads, x.grad.clone(), [b.clone() for b in model.buffers()]


def assert_same(a, b, tol):
    (la, ga, xa, ba), (lb, gb, xb, bb) = a, b
    assert abs(la - lb) <= tol
    assert ga.keys() == gb.keys()
    for name in ga:
        assert torch.allclose(ga[name], gb[name], atol=tol, rtol=tol), name
    assert torch.allclose(xa, xb, atol=tol, rtol=tol)
    for u, v in zip(ba, bb, strict=True):
        assert torch.allclose(u.double(), v.double(), atol=tol, rtol=tol)


def batch(dtype=torch.float64, n=3):
    g = torch.Generator().manual_seed(5)
    return torch.randn(n, 3, 8, 8, generator=g, dtype=dtype), torch.randint(0, 3, (n,), generator=g)


# ------------------------------------------------------------------------------------------- fused combination
@pytest.mark.parametrize("variant", ["plain", *VARIANTS])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_fused_combination_equals_autograd(scheme, variant):
    model = network(scheme, **VARIANTS.get(variant, {}))
    plain_model = copy.deepcopy(model)
    set_fused(plain_model, False)
    x, y = batch()
    fused = loss_and_grads(model, x, y)
    plain = loss_and_grads(plain_model, x, y)
    assert_same(fused, plain, 1e-12)
    assert all(g.abs().sum() > 0 for g in fused[1].values()), "every parameter gets a gradient"


def _hooks(model, make):
    return {block: make(block) for _, block, _ in model.blocks() if isinstance(block, SchemeBlock)}


@pytest.mark.parametrize("scheme", ["rk4", "rk8", "heun3"])
def test_fused_combination_under_hooks(scheme):
    """Zeroed increments (a lesion) and gradient routes (one edge per use, with per-sample masks) change the
    tensors that enter each combination; the fused path follows them exactly."""
    model = network(scheme)
    x, y = batch()
    mask = torch.tensor([1.0, 0.0, 1.0], dtype=x.dtype).view(3, 1, 1, 1)

    def route(block):
        s = block.scheme.increments
        edges = {("x", i): True for i in range(s)} | {(j, i): mask for i in range(s) for j in range(i)}
        return GradientRoute(edges | {(j, "y"): True for j in range(s)} | {("x", "y"): mask})

    for make in (lambda b: SwitchOff({1}), route):
        fused_model, plain_model = copy.deepcopy(model), copy.deepcopy(model)
        set_fused(plain_model, False)
        with hooked(_hooks(fused_model, make)):
            fused = loss_and_grads(fused_model, x, y)
        with hooked(_hooks(plain_model, make)):
            plain = loss_and_grads(plain_model, x, y)
        assert_same(fused, plain, 1e-12)


def saved_bytes(model, x, y) -> int:
    """Bytes of the distinct storages autograd saves for backward in one training forward."""
    seen: dict[int, int] = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        F.cross_entropy(model(x), y).backward()
    return sum(seen.values())


@pytest.mark.parametrize("scheme", ["rk4", "rk8"])
def test_fused_combination_keeps_no_extra_activations(scheme):
    """The fused path saves nothing for backward beyond what the units save (the increments are not kept)."""
    model = network(scheme, dtype=torch.float32)
    x, y = batch(torch.float32)
    fused = saved_bytes(model, x, y)
    set_fused(model, False)
    assert fused == saved_bytes(model, x, y)


# ------------------------------------------------------------------------------------------- checkpointing
@pytest.mark.parametrize("scheme", SCHEMES)
def test_checkpointing_equals_plain(scheme):
    """Gradients and BatchNorm running statistics equal the plain model's (drop-path masks replayed)."""
    model = network(scheme, drop_path_rate=0.2)
    other = copy.deepcopy(model)
    other.set_grad_checkpointing(True)
    x, y = batch()
    assert_same(loss_and_grads(other, x, y), loss_and_grads(model, x, y), 1e-12)


def test_checkpointing_does_not_count_batchnorm_twice():
    """A naive checkpoint recomputes the block in training mode and moves BN's running mean twice; horesnet's does
    not (this test fails for torch.utils.checkpoint used as is)."""
    model = network("rk4")
    naive, ours = copy.deepcopy(model), copy.deepcopy(model)
    ours.set_grad_checkpointing(True)
    x, y = batch()
    loss_and_grads(model, x, y)
    loss_and_grads(ours, x, y)
    naive.train()
    h = naive.stem(x)
    for stage in naive.stages:
        for block in stage:
            h = checkpoint(block, h, use_reentrant=False)
    F.cross_entropy(naive.forward_head(naive.final(h)), y).backward()
    mean = lambda m: torch.cat([b.running_mean for b in m.modules() if isinstance(b, nn.BatchNorm2d)])
    assert torch.equal(mean(ours), mean(model))
    assert not torch.allclose(mean(naive), mean(model))


@pytest.mark.parametrize("block, depth", [("euler", 56), ("rk4", 56)])
def test_checkpointing_halves_saved_activations(block, depth):
    model = build_model(block=block, depth=depth, width=0.25, num_classes=3)
    x, y = batch(torch.float32, n=4)
    plain = saved_bytes(model, x, y)
    model.set_grad_checkpointing(True)
    assert saved_bytes(model, x, y) <= 0.5 * plain


@pytest.mark.parametrize("variant", ["plain", "tied", "nested", "learn_step", "drop_path"])
@pytest.mark.parametrize("stages", [[1], [2, 3]])
def test_checkpointing_some_stages_equals_plain(variant, stages):
    """Checkpointing only some stages (the rest runs as usual) changes no gradient and no BN statistic."""
    model = network("rk4", **VARIANTS.get(variant, {}))
    other = copy.deepcopy(model)
    other.set_grad_checkpointing(True, stages=stages)
    marked = [si for si, stage in enumerate(other.stages, 1) for b in stage if b.recompute_units]
    assert set(marked) == set(stages)
    x, y = batch()
    assert_same(loss_and_grads(other, x, y), loss_and_grads(model, x, y), 1e-12)
    assert other.grad_checkpointing
    other.set_grad_checkpointing(False)
    assert not any(getattr(m, "recompute_units", False) for m in other.modules())
    assert not other.grad_checkpointing


@pytest.mark.parametrize("stages", [[0], [4], [], [1, 9], "1", [True], 2.5])
def test_checkpointing_bad_stages_are_refused(stages):
    model = network("euler")
    with pytest.raises(ConfigError, match=r"stages=.*from 1 to 3"):
        model.set_grad_checkpointing(True, stages=stages)


def test_ode_blocks_are_checkpointed_whole():
    """An ODE block cannot checkpoint its unit calls (the solver makes them): it is checkpointed as one block,
    and its gradients equal the plain network's."""
    torch.manual_seed(0)
    model = build_model(block="ode", depth=20, width=0.25, num_classes=3).double()
    other = copy.deepcopy(model)
    other.set_grad_checkpointing(True)
    assert any(getattr(b, "recompute_block", False) for stage in other.stages for b in stage)
    x, y = batch()
    got, want = loss_and_grads(other, x, y), loss_and_grads(model, x, y)
    assert torch.allclose(got[0], want[0], atol=1e-10)


def test_unit_checkpointing_lowers_the_peak_of_a_big_block():
    """RK8 blocks hold 14 units: checkpointing each unit call keeps the step's real peak (CPU allocator events,
    recomputation included) at most 0.6x the plain step's, where one checkpoint per block could not go below the
    recomputed block's own activations."""
    from benchmarks._harness import cpu_peak_bytes

    torch.manual_seed(0)
    model = build_model(block="rk8", depth=92, width=0.25, num_classes=3)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 3, (8,))

    def step(m):
        return lambda: F.cross_entropy(m(x), y).backward()

    model.train()
    step(model)()  # allocations of the first call (parameter gradients) happen outside the measured steps
    plain = cpu_peak_bytes(step(model))
    model.set_grad_checkpointing(True)
    ckpt = cpu_peak_bytes(step(model))
    assert plain and ckpt <= 0.6 * plain, (ckpt, plain)


# ------------------------------------------------------------------------------------------- torch.compile
COMPILED = [(scheme, "plain") for scheme in SCHEMES] + [("rk4", v) for v in ("tied", "nested", "learn_step",
                                                                              "drop_path")]


@pytest.mark.parametrize("scheme, variant", COMPILED)
def test_compiled_equals_eager_in_one_graph(scheme, variant):
    """Traced by dynamo as one graph (``fullgraph=True`` raises at any graph break) and, differentiated by AOT
    autograd, the same outputs and gradients as eager (float32, tolerance 1e-5). Every scheme runs the same block
    code, so the variants (tied, nested, learnable step, drop-path) are traced on rk4. Inductor's code generation
    is exercised on a GPU (tests marked gpu) and in the benchmarks; on this CPU it costs minutes per network."""
    model = network(scheme, dtype=torch.float32, **VARIANTS.get(variant, {}))
    x, y = batch(torch.float32)
    compiled = compile_model(copy.deepcopy(model), backend="aot_eager", fullgraph=True)
    eager = loss_and_grads(model, x, y)
    try:
        assert_same(loss_and_grads(compiled, x, y), eager, 1e-5)
    finally:
        torch._dynamo.reset()


@pytest.mark.parametrize("stages", [None, [2]])
def test_compiled_checkpointing_equals_eager(stages):
    """Activation checkpointing inside a compiled model (dynamo traces the recomputation): the same loss, gradients
    and BatchNorm statistics as the eager network without checkpointing."""
    model = network("rk4", dtype=torch.float32, drop_path_rate=0.2)
    other = copy.deepcopy(model)
    other.set_grad_checkpointing(True, stages=stages)
    assert other.grad_checkpointing and not model.grad_checkpointing
    x, y = batch(torch.float32)
    compiled = compile_model(other, backend="aot_eager")
    try:
        assert_same(loss_and_grads(compiled, x, y), loss_and_grads(model, x, y), 1e-5)
    finally:
        torch._dynamo.reset()


def test_compiled_model_keeps_state_dict_keys():
    model = network("rk4", dtype=torch.float32)
    keys = list(model.state_dict())
    assert list(compile_model(model, backend="aot_eager").state_dict()) == keys


def test_compile_mode_is_checked():
    from horesnet.errors import ConfigError

    with pytest.raises(ConfigError, match="'fastest'.*'max-autotune'"):
        compile_model(network("euler"), "fastest")


# ------------------------------------------------------------------------------------------- trainer=gpu
def test_gpu_trainer_group_sets_the_fast_defaults():
    from horesnet.cli.compose import compose
    from horesnet.training.config import trainer_kwargs

    cfg = compose("fit", ["trainer=gpu", "data=synthetic"])
    assert cfg.channels_last is True and cfg.trainer.precision == "bf16-mixed"
    kwargs = trainer_kwargs(cfg)
    assert kwargs["benchmark"] is True and kwargs["accelerator"] == "gpu" and "channels_last" not in kwargs
    assert compose("fit", ["trainer=gpu", "data=synthetic", "channels_last=false"]).channels_last is False
    assert compose("fit", ["data=synthetic"]).channels_last is False
