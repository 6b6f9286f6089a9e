"""A stage's units as the steps of a linear multistep scheme (docs/multistep.md, "Networks").

After a stage's Euler entry block (which changes resolution/width), its remaining T units form one
:class:`MultistepBlock`, whose forward pass is the formula of the scheme, one generic loop driven by its data:

    F_n = unit_n(x_n),    x_{n+1} = post_n( Σ_j α^n_j x_{n−j} + h Σ_j β^n_j F_{n−j} ),    n = 0..T−1

(α^n, β^n) being the scheme's ``stage_coefficients(T)`` (its starter rule in the first steps; fixed or learned, see
:mod:`horesnet.nn.multistep_coefficients`). ``post_n`` is the placement's after-add module (ReLU for ``original``,
identity for the pre-activation placements), one per step as in the Euler network, so that momentum at γ = 0 and
LM-ResNet at k = 0 *are* the Euler network with the same units; the published recurrences (Sander et al. 2021, Lu
et al. 2018) are those with post = identity. There is no per-scheme class.

Only the states and unit outputs a step still needs are kept (the k newest for a fixed history; all of them for
``average``). A block hook (docs/design.md, "Block hooks") is called as ``hook(block, n, x_n, F)`` before unit n
runs (``F`` the unit outputs so far); None switches unit n off (F_n = 0 wherever it is used, its unit not run),
otherwise ``(base, _)`` gives the unit's input. With ``reversible`` the stage trains without keeping its
activations (:mod:`horesnet.nn.reversible`).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from ..errors import ConfigError
from ..schemes import Multistep
from .block import NO_TORCHSCRIPT
from .multistep_coefficients import StageCoefficients
from .multistep_steps import combine_terms, run_steps  # noqa: F401 -- combine_terms re-exported
from .reversible import reversible_stage

# A reversible stage may have a predicted relative reconstruction error (horesnet.schemes.stage.inversion_error:
# eps * sum_{m<T} |h_m|, every root of rho) up to this, in float32. Chosen from the measured grid of
# benchmarks/momentumnet_fidelity.py (gamma 0.5/0.9/0.99 x T 10/50/100/200): the float32 cells predicted within 1e-4
# are exactly those whose measured gradient error (reversible vs autograd) is <= 1e-5; every tolerance in
# [9.0e-5, 1.2e-4) separates them the same way (docs/multistep.md, "Reversible training").
REVERSIBLE_TOLERANCE = 1e-4
MEASURED_TOLERANCE = 1e-3  # relative error of the rebuilt stage input, measured in backward, that warns
CHECK_EVERY = 200  # reversible passes between two checks (host reads): the first pass and every 200th


class MultistepBlock(nn.Module):
    """The units after a stage's entry block, as the steps of the multistep ``scheme`` (module docstring).

    ``posts``: one after-add module per step (None: identities). ``step``: h (``learn_step``: a learnable scalar
    named ``step``). ``learn``/``per_channel``/``value``: the scheme's coefficient family
    (:class:`~horesnet.nn.multistep_coefficients.StageCoefficients`). ``reversible``: train without keeping the
    stage's activations by inverting the recurrence in backward (invertible schemes, identity posts).
    """

    def __init__(self, scheme: Multistep, units: list[nn.Module], posts: list[nn.Module] | None = None,
                 step: float = 1.0, learn_step: bool = False, learn: bool | None = None, per_channel: bool = False,
                 value: float | None = None, reversible: bool = False):
        super().__init__()
        if not isinstance(scheme, Multistep):
            raise ConfigError(f"MultistepBlock needs a multistep scheme; got {scheme!r}.")
        if not units:
            raise ConfigError(f"a {scheme.name} stage needs at least one unit.")
        self.units = nn.ModuleList(units)
        self.posts = nn.ModuleList(posts if posts is not None else [nn.Identity() for _ in units])
        if len(self.posts) != len(self.units):
            raise ConfigError(f"a {scheme.name} stage of {len(units)} units needs {len(units)} post modules.")
        channels = getattr(units[0], "out_channels", 1)
        self.coefficients = StageCoefficients(scheme, len(units), channels, step, learn_step, learn, per_channel,
                                              value)
        self.scheme = self.coefficients.scheme  # at the given coefficient value
        self.history = scheme.k if scheme.history == "fixed" else 0  # states kept (0: all of them)
        self.hook = None
        self.reversible = False
        self._warned = False
        self._passes = 0
        self.last_reconstruction_error = None  # measured by the reversible backward on its checking passes
        if reversible:
            self.set_reversible(True)

    # ------------------------------------------------------------------ structure
    @property
    def increments(self) -> int:
        """Units of the stage (one per step)."""
        return len(self.units)

    @property
    def tied(self) -> bool:
        return False

    @property
    def learn_step(self) -> bool:
        return self.coefficients.learn_step

    @property
    def step(self):
        return self.coefficients.step

    def unit(self, i: int) -> nn.Module:
        return self.units[i]

    @property
    def active(self) -> tuple[bool, ...]:
        """Per unit: run in a forward pass (not switched off by the hook)."""
        off = self.hook.off if self.hook is not None else ()
        return tuple(i not in off for i in range(len(self.units)))

    # ------------------------------------------------------------------ reversible training
    def reversible_problem(self) -> str | None:
        """Why this stage cannot train reversibly (None: it can)."""
        s = self.scheme
        if not s.invertible:
            why = ("it uses every past state of the stage" if s.history == "stage" else
                   "its oldest state has no coefficient (alpha[k-1] = 0) or is also evaluated (beta[k-1] != 0)")
            return (f"scheme {s.name!r} cannot be inverted ({why}); reversible training needs a step that can be "
                    "solved for its oldest state: momentum, lm or leapfrog")
        if not all(isinstance(p, nn.Identity) for p in self.posts):
            return ("the placement puts an activation after each addition (e.g. placement='original': a ReLU), which "
                    "cannot be inverted; use a placement without one, e.g. placement=full_preact")
        return None

    def set_reversible(self, on: bool = True) -> None:
        if on:
            problem = self.reversible_problem()
            if problem:
                raise ConfigError(f"reversible=true: {problem}.")
        self.reversible = bool(on)

    def predicted_inversion_error(self, eps: float) -> float:
        """eps·Σ_{m<T} |h_m| (:func:`horesnet.schemes.stage.inversion_error`) at the block's current coefficients,
        worst channel: the relative reconstruction error predicted for this stage of T units (inf: not invertible)."""
        return self.coefficients.inversion_error(len(self.units), eps)

    def _use_reversible(self, x) -> bool:
        return (self.reversible and self.hook is None and torch.is_grad_enabled() and not isinstance(x, torch.fx.Proxy)
                and not torch.compiler.is_compiling())

    @property
    def checking(self) -> bool:
        """Whether this reversible pass checks its accuracy (the first pass and every ``CHECK_EVERY``-th)."""
        return (self._passes - 1) % CHECK_EVERY == 0

    def warn_reconstruction(self, error: float, dtype) -> None:
        """Record the measured relative error of the rebuilt stage input; warn once above ``MEASURED_TOLERANCE``."""
        self.last_reconstruction_error = error
        if error > MEASURED_TOLERANCE and not self._warned:
            self._warned = True
            warnings.warn(f"reversible {self.scheme.name} stage of {len(self.units)} units: its input rebuilt in "
                          f"backward differs from the true one by {error:.3g} (relative, {dtype}; tolerance "
                          f"{MEASURED_TOLERANCE:g}); its gradients are inaccurate. Use fewer units per stage, a "
                          "safer coefficient or reversible=false.", UserWarning, stacklevel=2)

    def _check_learned(self, x) -> None:
        """A learned coefficient may drift towards an unsafe value while training: warn once if it has. Checked at
        the first reversible pass and every ``CHECK_EVERY``-th after it (a host read of the coefficients)."""
        self._passes += 1
        if self._warned or self.coefficients.family is None or not self.checking:
            return
        eps = torch.finfo(x.dtype).eps / 2
        error = self.predicted_inversion_error(eps)
        if error > REVERSIBLE_TOLERANCE:
            self._warned = True
            warnings.warn(f"reversible {self.scheme.name} stage: its learned coefficients {self.coefficients.values()} "
                          f"predict a reconstruction error of {error:.3g} over {len(self.units)} units in "
                          f"{x.dtype} (tolerance {REVERSIBLE_TOLERANCE:g}); its gradients may be inaccurate.",
                          UserWarning, stacklevel=3)

    # ------------------------------------------------------------------ forward
    def forward(self, x):
        table, coefficients = self.coefficients.table()
        if self._use_reversible(x):
            self._check_learned(x)
            return reversible_stage(self, x, table, coefficients)
        return run_steps(self, x, table, coefficients)

    def __prepare_scriptable__(self):
        raise ConfigError(NO_TORCHSCRIPT)

    def extra_repr(self) -> str:
        return f"scheme={self.scheme.name}, units={len(self.units)}, reversible={self.reversible}"
