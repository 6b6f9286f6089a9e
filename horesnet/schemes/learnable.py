"""What a network may learn of a multistep scheme's coefficients, as data (docs/multistep.md, "Learnable").

Two kinds:

- ``affine``: one scalar θ (or one per channel, each channel then being its own scalar recurrence) with
  α(θ) = alpha0 + θ·dalpha and β(θ) = beta0 + θ·dbeta. LM-ResNet's k (α = (1−k, k), β = (1, 0)) and Momentum
  ResNet's γ (α = (1+γ, −γ), β = (1−γ, 0)) are of this kind. Σ dalpha = 0 is required, so every θ keeps Σα = 1:
  consistency is enforced by the parametrisation.
- ``history``: every α_j of the history is a parameter (DenseFormer-style averaging over all past states of a
  stage), with Σα = 1 enforced by the parametrisation α_0 = 1 − Σ_{j>=1} α_j; the scheme's α is the
  initialisation (identity: 1 on the newest state, 0 elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from fractions import Fraction

from .errors import SchemeError
from .tableau import _entry, _sequence

KINDS = ("affine", "history")


@dataclass(frozen=True)
class Learnable:
    """A learnable coefficient family of a :class:`~horesnet.schemes.Multistep`.

    ``learn`` says whether a network trains it by default (it may be fixed at ``init`` instead); ``per_channel``
    whether it may be one value per channel. ``init_range`` is the published random initialisation, if any (the
    scheme's coefficients are given at ``init``). ``zero_stable_range`` is the θ interval (lo, hi, lo included,
    hi included) in which the family is zero-stable; the tests check it against the roots of ρ.
    """

    name: str
    kind: str = "affine"
    init: float | None = None
    alpha0: tuple[float, ...] = ()
    dalpha: tuple[float, ...] = ()
    beta0: tuple[float, ...] = ()
    dbeta: tuple[float, ...] = ()
    learn: bool = True
    per_channel: bool = False
    init_range: tuple[float, float] | None = None
    zero_stable_range: tuple[float, float, bool, bool] | None = None
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        what = f"learnable {self.name!r}"
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise SchemeError(f"a learnable coefficient needs an identifier name (e.g. 'k'); got {self.name!r}.")
        if self.kind not in KINDS:
            raise SchemeError(f"{what}: kind must be one of {', '.join(KINDS)}; got {self.kind!r}.")
        vectors = {n: tuple(_entry(v, f"{n}[{i}] of {what}") for i, v in enumerate(_sequence(getattr(self, n),
                                                                                              f"{n} of {what}")))
                   for n in ("alpha0", "dalpha", "beta0", "dbeta")}
        for n, v in vectors.items():
            object.__setattr__(self, n, v)
        if self.kind == "history":
            if any(vectors.values()) or self.init is not None:
                raise SchemeError(f"{what}: a 'history' learnable has no init or alpha0/dalpha/beta0/dbeta; its "
                                  "initial value is the scheme's alpha.")
            return
        object.__setattr__(self, "init", _entry(self.init, f"init of {what}"))
        lengths = {len(v) for v in vectors.values()}
        if len(lengths) != 1 or 0 in lengths:
            raise SchemeError(f"{what}: alpha0, dalpha, beta0 and dbeta must have the same non-zero length (one entry "
                              f"per past state); got lengths {[len(v) for v in vectors.values()]}.")
        if sum(map(Fraction, self.dalpha)) != 0:
            raise SchemeError(f"{what}: sum(dalpha) must be 0 so that every value keeps sum(alpha) = 1 (consistency "
                              f"by parametrisation); got dalpha = {list(self.dalpha)}.")

    def coefficients(self, theta: float) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """(α, β) at θ: each entry alpha0 + θ·dalpha (β alike) computed exactly and rounded once to float64, so
        that e.g. momentum at γ = 0.9 gives α = (fl(1 + 0.9), −0.9), β = (fl(1 − 0.9), 0) as the published form."""
        if self.kind != "affine":
            raise SchemeError(f"learnable {self.name!r} is of kind {self.kind!r}; only 'affine' ones have a value.")
        t = Fraction(_entry(theta, f"value of learnable {self.name!r}"))

        def at(base, slope):
            return tuple(float(Fraction(b) + t * Fraction(s)) + 0.0 for b, s in zip(base, slope, strict=True))

        return at(self.alpha0, self.dalpha), at(self.beta0, self.dbeta)

    def at(self, theta: float) -> Learnable:
        """The same family with ``init`` = θ."""
        return replace(self, init=theta)
