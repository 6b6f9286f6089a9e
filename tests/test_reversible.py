"""Memory-free reversible training of multistep stages (horesnet/nn/reversible.py, docs/multistep.md).

The reference is ordinary autograd on the same network (the same weights, a deep copy): in float64 the gradients
of every parameter, of the input and of the learned coefficients agree to <= 1e-10 relative to the gradient's
scale at depths 8 and 50, BatchNorm statistics are updated once (num_batches_tracked == 1) and equal autograd's,
and the tensors saved for backward do not grow with depth. Refusals: non-invertible schemes, post-activations,
unsafe depth (with the override), multistep options on other blocks.
"""

from __future__ import annotations

import copy
import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from horesnet import ConfigError, build_model, get_scheme, list_schemes
from horesnet.nn.multistep import MultistepBlock

DT = torch.float64
INVERTIBLE = [s for s in list_schemes("multistep") if get_scheme(s).invertible]
# values of the schemes' coefficients at which 50 inverted units stay accurate in float64 (growth^50 * 1.1e-16)
SAFE = {"momentum": dict(), "leapfrog": dict(), "lm": dict(coefficient=-0.9)}


def unit(c: int = 4) -> nn.Module:
    """A unit with a BatchNorm (batch statistics in training) and a non-linearity: BN-tanh-conv."""
    conv = nn.Conv2d(c, c, 3, padding=1)
    nn.init.normal_(conv.weight, std=0.1)
    return nn.Sequential(nn.BatchNorm2d(c), nn.Tanh(), conv)


def grads(module: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad for n, p in module.named_parameters()}


def assert_same_gradients(ref: dict, got: dict, tol: float = 1e-10):
    """Every gradient within ``tol`` of the largest (a parameter whose exact gradient is 0 -- a conv bias ahead of
    a BatchNorm -- has only rounding)."""
    assert ref.keys() == got.keys()
    scale = max(g.abs().max().item() for g in ref.values())
    for name, g in ref.items():
        assert got[name] is not None, name
        err = (got[name] - g).abs().max().item() / scale
        assert err <= tol, f"{name}: relative error {err:.3g}"


def test_the_invertible_schemes_are_momentum_lm_and_leapfrog():
    assert INVERTIBLE == ["leapfrog", "lm", "momentum"] == sorted(SAFE)


@pytest.mark.parametrize("units", [8, 50])
@pytest.mark.parametrize("learn", [False, True])
@pytest.mark.parametrize("scheme", INVERTIBLE)
def test_stage_gradients_equal_autograd_in_float64(scheme, learn, units):
    if learn and scheme == "leapfrog":
        pytest.skip("leapfrog has no learnable coefficient")
    torch.manual_seed(0)
    kw = dict(SAFE[scheme], learn=learn) if "coefficient" not in SAFE[scheme] else dict(
        value=SAFE[scheme]["coefficient"], learn=learn)
    plain = MultistepBlock(get_scheme(scheme), [unit() for _ in range(units)], **kw).double()
    rev = copy.deepcopy(plain)
    rev.set_reversible(True)
    x = torch.randn(3, 4, 5, 5, dtype=DT)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya, yb = plain(xa), rev(xb)
    assert torch.equal(ya, yb)  # the same forward loop, without autograd
    w = torch.randn_like(ya)
    (ya * w).sum().backward()
    (yb * w).sum().backward()
    assert_same_gradients({**grads(plain), "x": xa.grad}, {**grads(rev), "x": xb.grad})
    if learn:
        assert rev.coefficients.coefficient.grad.abs().item() > 0  # gamma / k learn
    for a, b in zip(plain.modules(), rev.modules(), strict=True):
        if isinstance(a, nn.BatchNorm2d):
            assert int(b.num_batches_tracked) == 1 == int(a.num_batches_tracked)
            assert torch.equal(a.running_mean, b.running_mean) and torch.equal(a.running_var, b.running_var)


def test_gamma_is_used_as_given_and_states_keep_their_dtype():
    blk = MultistepBlock(get_scheme("momentum"), [unit() for _ in range(3)], reversible=True).double()
    table, tensors = blk.coefficients.table()
    xterms, fterms = table[1]
    assert not tensors and dict(xterms) == {0: 1.9, 1: -0.9} and dict(fterms) == {0: 1 - 0.9}
    assert isinstance(dict(xterms)[1], float)  # float64 0.9, not float32's 0.8999999761581421
    x = torch.randn(2, 4, 5, 5, dtype=DT, requires_grad=True)
    y = blk(x)
    assert y.dtype == DT
    y.sum().backward()
    assert x.grad.dtype == DT


@pytest.mark.parametrize("units", [8, 50])
def test_network_step_equals_autograd_with_bn_statistics_once(units):
    torch.manual_seed(0)
    plain = build_model(block="momentum", stages=[units + 1, 2, 2], depth=None, width=0.25,
                        placement="full_preact").double().train()
    rev = copy.deepcopy(plain)
    for _, blk, _ in rev.blocks():
        if isinstance(blk, MultistepBlock):
            blk.set_reversible(True)
    x, y = torch.randn(4, 3, 8, 8, dtype=DT), torch.tensor([0, 1, 2, 3])
    F.cross_entropy(plain(x), y).backward()
    F.cross_entropy(rev(x), y).backward()
    assert_same_gradients(grads(plain), grads(rev))
    for (name, a), (_, b) in zip(plain.named_buffers(), rev.named_buffers(), strict=True):
        if name.endswith("num_batches_tracked"):
            assert int(a) == int(b) == 1, name
        else:
            torch.testing.assert_close(b, a, rtol=0, atol=0, msg=name)


def test_built_reversible_network_trains_and_its_coefficients_learn():
    torch.manual_seed(0)
    model = build_model(block="lm", depth=20, width=0.25, placement="full_preact", reversible=True,
                        coefficient=-0.5)
    assert all(b.reversible for _, b, _ in model.blocks() if isinstance(b, MultistepBlock))
    F.cross_entropy(model(torch.randn(2, 3, 8, 8)), torch.tensor([1, 2])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_the_rebuilt_stage_input_is_measured_and_an_inaccurate_one_warns():
    torch.manual_seed(0)
    good = MultistepBlock(get_scheme("momentum"), [unit() for _ in range(8)], reversible=True).double()
    good(torch.randn(3, 4, 5, 5, dtype=DT, requires_grad=True)).sum().backward()
    assert 0 <= good.last_reconstruction_error < 1e-13
    # gamma = 0.5 in float32: an error doubles per inverted unit, 60 units lose every digit
    bad = MultistepBlock(get_scheme("momentum"), [unit() for _ in range(60)], value=0.5, reversible=True)
    with pytest.warns(UserWarning, match="rebuilt in backward differs"):
        bad(torch.randn(3, 4, 5, 5, requires_grad=True)).sum().backward()
    assert bad.last_reconstruction_error > 1e-3


def saved_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes of the distinct tensors autograd keeps for backward during one forward pass."""
    seen: dict[tuple, int] = {}

    def pack(t):
        seen[(t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        F.cross_entropy(model(x), torch.zeros(len(x), dtype=torch.long))
    return sum(seen.values())


def test_saved_memory_does_not_grow_with_depth():
    x = torch.randn(4, 3, 8, 8)
    sizes = {}
    for units in (4, 16):
        for rev in (False, True):
            torch.manual_seed(0)
            model = build_model(block="momentum", stages=[units + 1] * 3, depth=None, width=0.25,
                                placement="full_preact", reversible=rev)
            sizes[units, rev] = saved_bytes(model, x)
    assert sizes[4, True] == sizes[16, True]  # k = 2 states and the input per stage, whatever its depth
    assert sizes[16, False] > 2 * sizes[4, False] and sizes[16, False] > 4 * sizes[16, True]


# ------------------------------------------------------------------------------ refusals and the safety check
@pytest.mark.parametrize("scheme", sorted(set(list_schemes("multistep")) - set(INVERTIBLE)))
def test_non_invertible_schemes_are_refused_by_name(scheme):
    with pytest.raises(ConfigError, match=rf"reversible=true: block='{scheme}' cannot be inverted"):
        build_model(block=scheme, depth=20, width=0.25, placement="full_preact", reversible=True)


@pytest.mark.parametrize("kw, words", [
    (dict(block="rk4", depth=32), ["reversible=true", "block='rk4'", "leapfrog, lm, momentum"]),
    (dict(block="euler"), ["block='euler'", "cannot be inverted"]),
    (dict(block="momentum", placement="original"), ["placement='original'", "relu", "full_preact"]),
])
def test_reversible_elsewhere_is_refused_by_name(kw, words):
    with pytest.raises(ConfigError) as err:
        build_model(**{"depth": 20, "width": 0.25, "placement": "full_preact", "reversible": True, **kw})
    for w in words:
        assert w in str(err.value), str(err.value)


def two_root_error(r: float, units: int, eps: float = 2.0**-24) -> float:
    """The predicted reconstruction error of a two-step stage with roots 1 and r (momentum: r = γ, LM: r = −k) by the
    closed form eps·Σ_{m<T} |h_m|, h_m = (g^{m+1} − 1)/(g − 1), g = 1/r (independent of the library)."""
    g = 1 / r
    return eps * math.fsum(abs((g ** (m + 1) - 1) / (g - 1)) for m in range(units))


def last_safe(r: float, tolerance: float = 1e-4) -> int:
    t = 1
    while two_root_error(r, t + 1) <= tolerance:
        t += 1
    return t


def bound_in(text: str, name: str) -> tuple[str, float]:
    match = re.search(rf"{name} (>=|<=) (-?[0-9.e-]+) \(coefficient=\)", text)
    assert match, text
    return match.group(1), float(match.group(2))


def test_unsafe_depth_is_refused_with_the_safe_depth_and_accepted_on_request():
    # LM at k = -0.05 (roots 1 and 0.05): 4 units per stage predict 5.3e-4 > 1e-4, 3 units 2.6e-5
    kw = dict(block="lm", depth=32, width=0.25, placement="full_preact", reversible=True)
    with pytest.raises(ConfigError) as err:
        build_model(**kw)
    text = str(err.value)
    assert last_safe(0.05) == 3 and two_root_error(0.05, 4) > 1e-4 >= two_root_error(0.05, 3)
    assert "depth <= 26 (3 units per stage)" in text and "reversible_unsafe=true" in text
    assert f"{two_root_error(0.05, 4):.3g}" in text and "tolerance 0.0001" in text
    # the coefficient it names is safe at 4 units, one step of its last digit back towards k = -0.05 is not
    op, k = bound_in(text, "k")
    assert op == "<=" and two_root_error(-k, 4) <= 1e-4 < two_root_error(-(k + 2e-4), 4)
    build_model(**{**kw, "coefficient": k})
    with pytest.warns(UserWarning, match="Training anyway"):
        build_model(**kw, reversible_unsafe=True)
    build_model(**{**kw, "depth": 26})  # 3 units per stage: safe
    # momentum at gamma = 0.9 (roots 1 and 0.9): safe up to 29 units per stage in float32
    safe = last_safe(0.9)
    assert safe == 29
    build_model(block="momentum", stages=[safe + 1, 2, 2], depth=None, width=0.25, placement="full_preact",
                reversible=True)
    with pytest.raises(ConfigError, match=f"at most {safe} units per stage") as err:
        build_model(block="momentum", stages=[safe + 2, 2, 2], depth=None, width=0.25, placement="full_preact",
                    reversible=True)
    op, gamma = bound_in(str(err.value), "gamma")
    assert op == ">=" and two_root_error(gamma, safe + 1) <= 1e-4 < two_root_error(gamma - 2e-3, safe + 1)
    # the documented goal: depth 110 (17 units per stage after the entry block) trains without an override
    assert two_root_error(0.9, 17) == pytest.approx(1.77e-5, rel=1e-2)
    build_model(block="momentum", depth=110, width=0.25, placement="full_preact", reversible=True)
    # beyond 57 units no gamma < 1 is safe: even the double root 1 gives eps * T(T+1)/2 > 1e-4
    with pytest.raises(ConfigError, match="no gamma is safe at 60 units"):
        build_model(block="momentum", stages=[61, 2, 2], depth=None, width=0.25, placement="full_preact",
                    reversible=True)
    with pytest.raises(ConfigError, match="reversible_unsafe=true only"):
        build_model(block="momentum", depth=20, reversible_unsafe=True)


def test_predicted_error_takes_the_worst_channel_of_learned_coefficients():
    from horesnet.schemes.stage import FLOAT32_EPS

    blk = MultistepBlock(get_scheme("lm"), [nn.Conv2d(4, 4, 3, padding=1) for _ in range(6)], learn=True,
                         per_channel=True)
    ks = [-0.5, -0.9, -0.3, 0.6]  # roots -k: 0.5, 0.9, 0.3 (the worst) and -0.6
    with torch.no_grad():
        blk.coefficients.center.copy_(torch.tensor(ks, dtype=torch.float64))
    assert blk.coefficients.values()["k"] == pytest.approx(ks, abs=1e-15)
    per_channel = [two_root_error(-k, 6) for k in ks]
    assert max(per_channel) == per_channel[2] > 5 * per_channel[0]
    assert blk.predicted_inversion_error(FLOAT32_EPS) == pytest.approx(per_channel[2], rel=1e-9)
    assert blk.coefficients.safe_inversion_depth(1e-4, FLOAT32_EPS) == last_safe(0.3)
    assert blk.coefficients.inversion_growth() == pytest.approx(1 / 0.3)
    # the current coefficients, not the initial ones: moving the worst channel changes the prediction
    with torch.no_grad():
        blk.coefficients.center[2] = -0.95
    assert blk.predicted_inversion_error(FLOAT32_EPS) == pytest.approx(per_channel[0], rel=1e-9)


@pytest.mark.parametrize(("gamma", "units"), [(0.99, 50), (0.9, 10), (0.99, 10)])
def test_the_prediction_is_not_below_the_measured_float32_reconstruction_error(gamma, units):
    """The network of benchmarks/momentumnet_fidelity.py (BN(4)-tanh-conv3x3 units, weights N(0, 0.1^2), seed 0):
    the measured relative error of the rebuilt stage input stays below the prediction. The former model, eps·γ^−T,
    predicted less than was measured (γ = 0.99, T = 50: 9.9e-8 against 2.4e-5)."""
    from horesnet.schemes.stage import FLOAT32_EPS

    torch.manual_seed(0)
    units_ = [unit() for _ in range(units)]
    blk = MultistepBlock(get_scheme("momentum"), units_, value=gamma, reversible=True).train()
    x = torch.randn(4, 4, 8, 8, requires_grad=True)
    w = torch.randn_like(x)
    (blk(x) * w).sum().backward()
    measured, predicted = blk.last_reconstruction_error, blk.predicted_inversion_error(FLOAT32_EPS)
    assert predicted == pytest.approx(two_root_error(gamma, units), rel=1e-9)
    assert 0 < measured <= predicted
    assert measured > FLOAT32_EPS * gamma ** -units  # what the former model predicted: too optimistic


def test_benchmark_quick_run_writes_its_report(tmp_path):
    """benchmarks/multistep.py (memory and accuracy parts, smoke sizes): the report's saved bytes of a reversible
    network do not grow with depth and its float64 gradients agree with autograd."""
    import json

    from benchmarks.multistep import main

    out = tmp_path / "multistep.json"
    assert main(["--quick", "--parts", "memory,accuracy", "--out", str(out), "--threads", "1"]) == 0
    report = json.loads(out.read_text())
    saved = [r["reversible_saved_mb"] for r in report["memory"]]
    assert saved[0] == saved[-1] and report["memory"][-1]["saved_ratio"] < 0.5
    assert all(r["relative_error"] < 1e-12 for r in report["accuracy"] if r["dtype"] == "float64")
