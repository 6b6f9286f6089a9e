"""The multistep step's sum formed in fewer elementwise passes (horesnet/nn/multistep_steps.py: a lerp for a state
pair whose coefficients sum to 1, ``addcmul_``/``add_`` into our own temporary; the coefficient table's structure
built once, its tensors cached without a graph) computes what the former term-by-term sum did.

The reference below is the former implementation, written out: Σ_j α_j x_{n−j} + Σ_j h β_j F_{n−j}, one product and
one addition per term, the coefficients rebuilt from θ every forward as ``a0 + θ·da``. In float64 the outputs and
the gradients (input, unit parameters, learned coefficients, learned step) agree to <= 1e-12 relative, for lm (k
learned, scalar and per channel; fixed), momentum (γ fixed and learned), ab2, ab3, leapfrog and average, in training
and eval mode, plain and reversible.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from horesnet import get_scheme
from horesnet.nn.multistep import MultistepBlock
from horesnet.nn.multistep_steps import StepTable, combine_terms

DT = torch.float64
C = 4


class Unit(nn.Module):
    """BN-tanh-conv with ``out_channels`` (so that a per-channel coefficient has C channels)."""

    def __init__(self, c: int = C):
        super().__init__()
        self.out_channels = c
        self.body = nn.Sequential(nn.BatchNorm2d(c), nn.Tanh(), nn.Conv2d(c, c, 3, padding=1))
        nn.init.normal_(self.body[2].weight, std=0.2)

    def forward(self, x):
        return self.body(x)


def reference(block: MultistepBlock, x: torch.Tensor) -> torch.Tensor:
    """The former forward: coefficients from θ (``a0 + θ·da``), then Σ c·t term by term."""
    co, T = block.coefficients, len(block.units)
    h = co.step
    if co.family is None:
        steps = co.scheme.stage_coefficients(T)
    elif co.family.kind == "affine":
        d = co.coefficient
        theta = co.center.to(d.dtype) + co.radius * (torch.tanh(d + co.offset.to(d.dtype))
                                                     - torch.tanh(co.offset.to(d.dtype)))
        if co.per_channel:
            theta = theta.view(-1, 1, 1)
        fam = co.family
        alpha = [a0 + theta * da if da else float(a0) for a0, da in zip(fam.alpha0, fam.dalpha, strict=True)]
        beta = [b0 + theta * db if db else float(b0) for b0, db in zip(fam.beta0, fam.dbeta, strict=True)]
        steps = co._starter(alpha, beta)
    else:  # history (average): step n's older weights after those of steps < n, α_0 = 1 − their sum
        steps, at = [], 0
        for n in range(T):
            older = [co.alpha[at + i] for i in range(n)]
            at += n
            steps.append(([1 - co.alpha[at - n:at].sum(), *older] if n else [1.0], [co.scheme.beta[0]]))
    xs, fs = [x], []
    for n, (alpha, beta) in enumerate(steps):
        fs.append(block.units[n](xs[n]))
        z = None
        for j, a in enumerate(alpha):
            if torch.is_tensor(a) or a != 0:
                z = xs[n - j] * a if z is None else z + xs[n - j] * a
        for j, b in enumerate(beta):
            if torch.is_tensor(b) or b != 0:
                z = z + fs[n - j] * (h * b)
        xs.append(block.posts[n](z))
    return xs[-1]


CASES = {
    "lm_learned": dict(scheme="lm", learn=True, value=-0.3),
    "lm_learned_per_channel": dict(scheme="lm", learn=True, per_channel=True),
    "lm_fixed": dict(scheme="lm", learn=False, value=-0.3),
    "momentum_fixed": dict(scheme="momentum"),
    "momentum_learned": dict(scheme="momentum", learn=True, value=0.7),
    "momentum_learned_step": dict(scheme="momentum", learn=True, learn_step=True, step=0.8),
    "lm_learned_step": dict(scheme="lm", learn=True, per_channel=True, learn_step=True, step=1.3),
    "ab2": dict(scheme="ab2", step=0.5),
    "ab3": dict(scheme="ab3"),
    "leapfrog": dict(scheme="leapfrog", step=0.7),
    "average": dict(scheme="average"),
}


def make(case: str, units: int = 6, relu: bool = False, reversible: bool = False) -> MultistepBlock:
    torch.manual_seed(0)
    kw = dict(CASES[case])
    posts = [nn.ReLU() for _ in range(units)] if relu else None
    block = MultistepBlock(get_scheme(kw.pop("scheme")), [Unit() for _ in range(units)], posts=posts,
                           reversible=reversible, **kw).double()
    with torch.no_grad():  # move the learned coefficients off their initial values
        for name, p in block.named_parameters():
            if name.startswith("coefficients."):
                p.add_(torch.linspace(-0.3, 0.3, p.numel(), dtype=DT).view_as(p) if p.dim() else torch.tensor(0.2))
    return block


def relative(a: torch.Tensor, b: torch.Tensor, floor: float = 1e-300) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(floor)).item()


def assert_same_gradients(got: dict, ref: dict, tol: float):
    """Each gradient within ``tol`` of its own largest entry; one whose exact value is 0 (a conv bias ahead of a
    BatchNorm: rounding only, below 1e-10 of the largest gradient) within ``tol`` of the largest gradient."""
    assert got.keys() == ref.keys()
    scale = max(g.abs().max().item() for g in ref.values())
    for name, g in ref.items():
        assert got[name] is not None, name
        own = g.abs().max().item()
        denominator = own if own >= 1e-10 * scale else scale
        assert (got[name] - g).abs().max().item() / denominator <= tol, name


def gradients(block, x, fn):
    x = x.clone().requires_grad_(True)
    y = fn(block, x)
    w = torch.linspace(-1, 1, y.numel(), dtype=DT).view_as(y)
    (y * w).sum().backward()
    return y.detach(), {"x": x.grad, **{n: p.grad for n, p in block.named_parameters()}}


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("case", list(CASES))
def test_outputs_and_gradients_equal_the_former_sum(case, relu):
    new, old = make(case, relu=relu), make(case, relu=relu)
    x = torch.randn(3, C, 5, 5, dtype=DT)
    y_new, g_new = gradients(new, x, lambda b, v: b(v))
    y_old, g_old = gradients(old, x, reference)
    assert relative(y_new, y_old) <= 1e-12
    assert_same_gradients(g_new, g_old, 1e-12)
    new.eval(), old.eval()
    with torch.no_grad():
        for _ in range(2):  # the second forward reuses the cached coefficient tensors
            assert relative(new(x), reference(old, x)) <= 1e-12


@pytest.mark.parametrize("case", ["lm_learned", "lm_learned_per_channel", "momentum_fixed", "momentum_learned"])
def test_reversible_gradients_equal_the_former_sum(case):
    new, old = make(case, units=5, reversible=True), make(case, units=5)
    x = torch.randn(3, C, 5, 5, dtype=DT)
    y_new, g_new = gradients(new, x, lambda b, v: b(v))
    y_old, g_old = gradients(old, x, reference)
    assert relative(y_new, y_old) <= 1e-12
    assert_same_gradients(g_new, g_old, 1e-10)  # the rebuild: rounding grown by 1/|α_1| per unit


@pytest.mark.parametrize("case", ["lm_learned", "lm_learned_per_channel", "lm_fixed", "momentum_fixed",
                                  "momentum_learned"])
def test_lm_and_momentum_steps_are_one_lerp(case):
    block = make(case)
    table, tensors = block.coefficients.table()
    assert isinstance(table, StepTable)
    plans = table.plans
    assert plans[0][0] is None  # the starter step: x_0 alone
    assert all(w is not None for w, _, _ in plans[1:])
    if block.coefficients.family is not None:
        assert block.coefficients.table()[0] is table  # the structure is built once
        w = plans[1][0]
        assert isinstance(w, int) and table.complements
        xterms = dict(table[1][0])
        assert torch.allclose(tensors[xterms[0]], 1 - tensors[w], rtol=0, atol=1e-15)


def test_cached_coefficients_follow_the_parameter():
    block = make("lm_learned_per_channel").eval()
    x = torch.randn(2, C, 5, 5, dtype=DT)
    with torch.no_grad():
        block(x)
        block.coefficients.coefficient.add_(0.05)  # an optimiser step: a new version
        assert relative(block(x), reference(block, x)) <= 1e-12
    with torch.inference_mode():
        assert relative(block(x), reference(block, x)) <= 1e-12
    block.float()  # a new dtype: recomputed, in float32
    with torch.no_grad():
        y = block(x.float())
        assert y.dtype == torch.float32
        assert relative(y.double(), reference(block.double(), x)) <= 1e-5
    block.train()  # with grad: built with the graph, never from the cache
    y = block(x)
    y.sum().backward()
    assert block.coefficients.coefficient.grad.abs().sum() > 0
    copy.deepcopy(block)(x)  # the caches travel with a copy


def test_combine_terms_forms():
    a, b, c = (torch.randn(2, 3, dtype=DT) for _ in range(3))
    k = torch.tensor(0.3, dtype=DT)
    z, fresh = combine_terms([(a, 1.0)], [])
    assert z is a and not fresh
    z, fresh = combine_terms([(a, 1.0), (b, 0), (c, 0.5)], [k])  # an int is an index, not a float
    assert fresh and torch.allclose(z, a + b * k + 0.5 * c, rtol=1e-15, atol=0)
    z, fresh = combine_terms([(a, 0), (b, 2.0)], [k])
    assert fresh and torch.allclose(z, a * k + 2 * b, rtol=1e-15, atol=0)


def test_a_weight_of_another_dtype_is_summed_term_by_term():
    block = make("lm_learned").float()  # coefficients float32, states float64: no lerp, the same value
    x = torch.randn(2, C, 5, 5, dtype=DT)
    block.units.double()
    with torch.no_grad():
        assert block(x).dtype == DT


@pytest.mark.parametrize("name", ["lm_learned", "momentum_learned"])
def test_tracing_after_eager_calls_uses_no_cache(name):
    # torchvision's create_feature_extractor and timm's FeatureGraphNet trace a network that has usually run
    # eagerly first: a traced parameter's dtype is an fx proxy, which must never meet the eager caches
    torch.manual_seed(0)
    block = make(name).eval()
    x = torch.randn(2, C, 5, 5, dtype=DT)
    with torch.no_grad():
        eager = block(x)
        block(x)  # the caches are filled
    graph = torch.fx.symbolic_trace(block)
    with torch.no_grad():
        assert torch.equal(graph(x), eager)
        assert torch.equal(block(x), eager)  # and the eager path after tracing


# A user family whose per-step coefficient tensors differ: α = (1−θ, θ), β = (3/2 + θ/2, −1/2 − θ/4) (Adams–Bashforth
# 2 at θ = 0, its β moving with θ), learned per channel. β_1 != 0, so the first step is the Euler starter with
# h·h_eff = h·Σβ/(1 + θ); every later step forms its own h·β_j products, and those of a step are freed before the
# next is built. StageCoefficients.table() once deduplicated the tensors by id() while keeping only their
# (−1, 1, 1) views: under inference mode (views then hold no base) a freed product's id was reused by the next
# step's, which was mapped to the first step's tensor, so step 1 used h·h_eff for h·β_0: a silently wrong output.
_AB_THETA = dict(init=0.2, alpha0=(1, 0), dalpha=(-1, 1), beta0=(1.5, -0.5), dbeta=(0.5, -0.25), per_channel=True,
                 zero_stable_range=(-1.0, 1.0, False, True))


def _ab_theta_scheme():
    from horesnet.schemes import Learnable, Multistep

    fam = Learnable("theta", **_AB_THETA)
    alpha, beta = fam.coefficients(fam.init)
    return Multistep("ab_theta_test", alpha, beta, learnable=(fam,))


def _ab_theta_loop(block: MultistepBlock, x: torch.Tensor) -> torch.Tensor:
    """The recurrence written out from the parameters alone, per channel in float64."""
    co = block.coefficients
    lo, hi = _AB_THETA["zero_stable_range"][:2]
    centre = torch.full((C,), _AB_THETA["init"], dtype=DT)
    offset = torch.atanh((2 * centre - lo - hi) / (hi - lo))
    theta = centre + (hi - lo) / 2 * (torch.tanh(co.coefficient.detach().double() + offset) - torch.tanh(offset))
    theta = theta.view(-1, 1, 1)
    h = float(co.step)
    a = (1 - theta, theta)
    b = (1.5 + 0.5 * theta, -0.5 - 0.25 * theta)
    xs, fs = [x], []
    for n, unit in enumerate(block.units):
        fs.append(unit(xs[n]))
        if n == 0:  # Euler starter at the effective step Σβ/ρ'(1), ρ'(1) = 1 + α_1
            z = xs[0] + h * (b[0] + b[1]) / (1 + theta) * fs[0]
        else:
            z = a[0] * xs[n] + a[1] * xs[n - 1] + h * (b[0] * fs[n] + b[1] * fs[n - 1])
        xs.append(z)
    return xs[-1]


@pytest.mark.parametrize("mode", ["inference", "no_grad", "grad"])
@pytest.mark.parametrize("learn_step", [False, True])
def test_per_step_coefficient_tensors_are_not_confused_by_id(mode, learn_step):
    torch.manual_seed(0)
    block = MultistepBlock(_ab_theta_scheme(), [Unit() for _ in range(6)], per_channel=True, learn=True,
                           learn_step=learn_step, step=0.7).double().eval()
    with torch.no_grad():
        block.coefficients.coefficient.add_(torch.linspace(-0.4, 0.4, C, dtype=DT))  # θ differs per channel
    x = torch.randn(2, C, 5, 5, dtype=DT)
    context = {"inference": torch.inference_mode, "no_grad": torch.no_grad, "grad": torch.enable_grad}[mode]
    with context():
        y = block(x)
        table, tensors = block.coefficients.table()
    with torch.no_grad():
        expected = _ab_theta_loop(block, x)
    assert relative(y.detach(), expected) <= 1e-12
    assert len(tensors) == len({id(t) for t in tensors})
    # step 1 (the first full step) reads its own h·β_0, not the Euler starter's h·h_eff
    (_, c0), = table[0][1]
    c1 = dict(table[1][1])[0]
    assert c1 != c0
