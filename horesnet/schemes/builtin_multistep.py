"""Built-in linear multistep schemes, as data (docs/multistep.md).

x_{n+1} = Σ_j α_j x_{n−j} + h Σ_j β_j F(x_{n−j}), j = 0 the newest state. References:

- ``lm``: LM-ResNet, Y. Lu, A. Zhong, Q. Li, B. Dong, "Beyond Finite Layer Neural Networks: Bridging Deep
  Architectures and Numerical Differential Equations", ICML 2018: x_{n+1} = (1−k) x_n + k x_{n−1} + F(x_n), k
  learned (scalar or per channel). The paper draws k uniformly from [−0.1, 0]; the scalar default here is the
  middle of that range, k = −0.05 (``init_range`` keeps the published range for per-channel draws). Its first step
  after the stage's first state, with x_{−1} = x_0, is the Euler step x_1 = x_0 + F(x_0).
- ``momentum``: Momentum ResNet, M. E. Sander, P. Ablin, M. Blondel, G. Peyré, "Momentum Residual Neural
  Networks", ICML 2021: v ← γv + (1−γ)F(x), x ← x + v with v_0 = 0, γ = 0.9. Eliminating v,
  x_{n+1} = (1+γ) x_n − γ x_{n−1} + (1−γ) F(x_n); v_0 = x_0 − x_{−1} = 0 is the "repeat" starter x_{−1} = x_0.
  γ is 0.9 as a float64 (not rounded to float32); α = (fl(1.9), −0.9), β = (fl(1 − 0.9), 0).
- ``ab2``, ``ab3``: Adams–Bashforth 2 and 3 (HNW I, Sec. III.1), Euler steps as starters.
- ``leapfrog``: the explicit midpoint rule x_{n+1} = x_{n−1} + 2h F(x_n) (Nyström's 2-step method), an Euler
  starter step.
- ``average``: learned averaging over all past states of a stage (DenseFormer-style, M. Pagliardini et al.,
  "DenseFormer", NeurIPS 2024), x_{n+1} = Σ_{j<=n} α_j x_{n−j} + F(x_n), identity-initialised (α = 1 on the
  newest state, 0 elsewhere), Σα = 1 by parametrisation.
"""

from __future__ import annotations

from fractions import Fraction as F

from .learnable import Learnable
from .multistep import Multistep

LM_K = -0.05
MOMENTUM_GAMMA = 0.9

_LM_K = Learnable(
    "k", init=LM_K, alpha0=(1, 0), dalpha=(-1, 1), beta0=(1, 0), dbeta=(0, 0), learn=True, per_channel=True,
    init_range=(-0.1, 0.0), zero_stable_range=(-1.0, 1.0, False, True),
    description="LM-ResNet's k: alpha = (1-k, k), beta = (1, 0); zero-stable for -1 < k <= 1 (roots 1 and -k).",
)
_MOMENTUM_GAMMA = Learnable(
    "gamma", init=MOMENTUM_GAMMA, alpha0=(1, 0), dalpha=(1, -1), beta0=(1, 0), dbeta=(-1, 0), learn=False,
    per_channel=False, zero_stable_range=(-1.0, 1.0, True, False),
    description="Momentum ResNet's gamma (fixed in the paper): alpha = (1+gamma, -gamma), beta = (1-gamma, 0); "
                "zero-stable for -1 <= gamma < 1 (roots 1 and gamma).",
)
_AVERAGE_WEIGHTS = Learnable(
    "alpha", kind="history", learn=True, per_channel=False,
    description="one weight per past state of the stage, sum 1 by parametrisation (alpha_0 = 1 - sum of the "
                "others); initialised to the identity (1 on the newest state).",
)


def _lmm(name, alpha, beta, order, description, **kw) -> Multistep:
    return Multistep(name, tuple(float(a) for a in alpha), tuple(float(b) for b in beta), description=description,
                     promised_order=order, **kw)


BUILTIN_MULTISTEP: tuple[Multistep, ...] = (
    _lmm("lm", *_LM_K.coefficients(LM_K), 1, "LM-ResNet (Lu et al. 2018): (1-k) x_n + k x_(n-1) + F(x_n), k learned; "
         "k = -0.05 here.", learnable=(_LM_K,), starter="repeat"),
    _lmm("momentum", *_MOMENTUM_GAMMA.coefficients(MOMENTUM_GAMMA), 1,
         "Momentum ResNet (Sander et al. 2021): v <- 0.9 v + 0.1 F(x), x <- x + v, v_0 = 0.",
         learnable=(_MOMENTUM_GAMMA,), starter="repeat"),
    _lmm("ab2", (1, 0), (F(3, 2), F(-1, 2)), 2, "Adams-Bashforth 2 (Euler starter step).", starter="euler"),
    _lmm("ab3", (1, 0, 0), (F(23, 12), F(-16, 12), F(5, 12)), 3, "Adams-Bashforth 3 (Euler starter steps).",
         starter="euler"),
    _lmm("leapfrog", (0, 1), (2, 0), 2, "Leapfrog / explicit midpoint: x_(n-1) + 2h F(x_n) (Euler starter step).",
         starter="euler"),
    _lmm("average", (1,), (1,), 1, "Learned averaging of all past states of the stage (DenseFormer-style), "
         "identity-initialised.", history="stage", learnable=(_AVERAGE_WEIGHTS,), starter="repeat"),
)
