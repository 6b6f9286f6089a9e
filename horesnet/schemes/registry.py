"""One registry of named schemes (:data:`SCHEMES`, a :class:`horesnet.registry.Registry`), Runge–Kutta tableaux and
linear multistep methods alike: the built-ins plus whatever users register.

A registered name is usable everywhere a scheme is accepted (``block=NAME`` in the CLI, comparisons,
analysis). Names are identifier-like (letters, digits, underscore; not starting with a digit) and
``ode`` is reserved for the continuous-depth reference block. Besides the built-in methods it holds the
compatibility scheme ``ho2021_rk8_published`` (:mod:`horesnet.schemes.compat`), which carries a warning.

Multistep schemes (:class:`Multistep`) are registered and queried here too, and networks are built of both kinds
(``block=momentum``; docs/multistep.md): ``list_schemes()`` lists every scheme, ``list_schemes("rk")`` the
Runge–Kutta tableaux (what ``inner=`` accepts) and ``list_schemes("multistep")`` the others.
"""

from __future__ import annotations

import difflib
import math
import warnings

from ..registry import Registry
from .builtin import BUILTIN_TABLEAUX
from .builtin_multistep import BUILTIN_MULTISTEP
from .compat import ho2021_rk8_published
from .errors import SchemeError
from .multistep import Multistep
from .order import MAX_COMPUTED_ORDER, OrderCondition, conditions
from .tableau import Tableau

RESERVED_NAMES = frozenset({"ode"})
KINDS = ("rk", "multistep", "all")

Scheme = Tableau | Multistep


def _unknown(registry, name) -> SchemeError:
    close = difflib.get_close_matches(str(name).lower(), list_schemes("all"), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return SchemeError(
        f"unknown scheme {name!r}; valid schemes: {', '.join(list_schemes('rk'))}; multistep schemes: "
        f"{', '.join(list_schemes('multistep'))}.{hint} Add your own with horesnet.schemes.register_scheme(name, A, b) "
        "or register_scheme(name, alpha=..., beta=...)."
    )


#: every scheme by name (horesnet.registry): the built-ins below are locked, users add theirs
SCHEMES: Registry[Scheme] = Registry(
    "scheme", sort=True, error=SchemeError, unknown=_unknown,
    rule="use letters, digits and underscores, not starting with a digit (e.g. 'my_rk3')",
    reserved={"ode": "block=ode is the continuous-depth Neural ODE reference"})
for _t in BUILTIN_TABLEAUX:
    SCHEMES.register(_t.name, _t)
COMPAT_TABLEAUX: tuple[Tableau, ...] = (ho2021_rk8_published(SCHEMES.get("rk8")),)
for _t in (*COMPAT_TABLEAUX, *BUILTIN_MULTISTEP):
    SCHEMES.register(_t.name, _t)
SCHEMES.lock_builtins()
BUILTIN_NAMES = frozenset(SCHEMES.builtins())


def list_schemes(kind: str = "all") -> list[str]:
    """Sorted names of the registered schemes of one ``kind``: ``"all"`` (the default: every scheme a network can be
    built of), ``"rk"`` (Runge–Kutta tableaux) or ``"multistep"``."""
    if kind not in KINDS:
        raise SchemeError(f"kind must be one of {', '.join(map(repr, KINDS))}; got {kind!r}.")
    return [name for name, s in SCHEMES.items() if kind == "all" or s.kind == kind]


def get_scheme(name: str | Scheme) -> Scheme:
    """The registered scheme called ``name`` (a :class:`Tableau` or a :class:`Multistep`); a scheme passed in is
    returned unchanged."""
    if isinstance(name, (Tableau, Multistep)):
        return name
    if not isinstance(name, str):
        raise SchemeError(
            f"a scheme must be given as a name (str), a Tableau or a Multistep; got {name!r} of type "
            f"{type(name).__name__}. Valid schemes: {', '.join(list_schemes())}."
        )
    return SCHEMES.get(name)


def register_scheme(name: str, A=None, b=None, *, alpha=None, beta=None, description: str = "", warning: str = "",
                    overwrite: bool = False, **multistep) -> Scheme:
    """Validate a scheme, register it as ``name`` and return it: a Runge–Kutta tableau, ``register_scheme(name, A,
    b)``, or a linear multistep method, ``register_scheme(name, alpha=[...], beta=[...])`` (x_{n+1} = Σ α_j x_{n−j}
    + h Σ β_j F(x_{n−j}), j = 0 the newest state; ``multistep`` passes ``history``, ``starter`` and ``learnable``
    on to :class:`Multistep`).

    Inconsistent tableaux (Σb != 1) are accepted; their computed order is 0 and ``consistent`` is False. A
    multistep method must be consistent (Σα = 1, σ(1) and ρ'(1) non-zero) and zero-stable; one that is not is
    refused unless it is flagged. A non-empty ``warning`` flags the scheme: every network built of it issues that
    text as a ``UserWarning`` (:func:`warn_flagged`). Re-using a name needs ``overwrite=True``; built-in schemes can
    never be replaced.
    """
    SCHEMES.check_new(name, overwrite=overwrite)
    rk, lmm = (A is not None or b is not None), (alpha is not None or beta is not None)
    if rk == lmm or (rk and multistep):
        raise SchemeError(
            f"scheme {name!r}: give either a Butcher tableau, register_scheme(name, A, b), or multistep "
            "coefficients, register_scheme(name, alpha=[...], beta=[...]); got "
            + ("both." if rk and lmm else "neither." if not rk else f"A, b with {sorted(multistep)}.")
        )
    if rk:
        scheme = Tableau(name, A, b, description=description, warning=warning)
    else:
        for what, value in (("alpha", alpha), ("beta", beta)):
            if value is None:
                raise SchemeError(f"scheme {name!r}: a multistep method needs both alpha and beta; {what} is missing.")
        unknown = sorted(set(multistep) - {"history", "starter", "learnable"})
        if unknown:
            raise SchemeError(f"scheme {name!r}: unknown options {unknown}; a multistep method takes history, starter "
                              "and learnable.")
        scheme = Multistep(name, alpha, beta, description=description, warning=warning, **multistep)
        if not warning:
            _check_sound(scheme)
    return SCHEMES.register(name, scheme, overwrite=overwrite)


def _check_sound(m: Multistep) -> None:
    """Refuse an inconsistent or zero-unstable multistep method, naming the problem."""
    how = "pass warning='...' to register it as a flagged scheme anyway."
    if not m.preconsistent:
        raise SchemeError(f"scheme {m.name!r} is not consistent: sum(alpha) = {math.fsum(m.alpha)!r} must be 1 (rho(1) "
                          f"= 0), else the recurrence does not even keep a constant state; {how}")
    if not m.consistent:
        raise SchemeError(f"scheme {m.name!r} is not consistent: sigma(1) = sum(beta) and rho'(1) = 1 + sum(j*alpha_j) "
                          f"must both be non-zero (the effective step is their ratio); got alpha = {list(m.alpha)}, "
                          f"beta = {list(m.beta)}; {how}")
    if not m.zero_stable:
        raise SchemeError(f"scheme {m.name!r} is not zero-stable: {m.zero_stability_reason}; its parasitic solutions "
                          f"grow with depth. {how}")


def warn_flagged(*names, stacklevel: int = 2) -> None:
    """Issue the registered warning of each flagged scheme among ``names`` as a ``UserWarning`` (which the command
    lines print on stderr); None and ``ode`` are skipped. ``stacklevel`` counts from the caller, as in
    :func:`warnings.warn`."""
    for name in dict.fromkeys(n for n in names if n is not None and n not in RESERVED_NAMES):
        s = get_scheme(name)
        if s.warning:
            facts = f"sum(b) = {math.fsum(s.b):.6g}" if isinstance(s, Tableau) else (
                f"consistent {s.consistent}, zero-stable {s.zero_stable}")
            warnings.warn(f"scheme {s.name!r} (computed order {s.order}, {facts}): {s.warning}", UserWarning,
                          stacklevel=stacklevel + 1)


def unregister_scheme(name: str) -> None:
    """Remove a user-registered scheme (built-ins cannot be removed)."""
    SCHEMES.unregister(name)


def order_conditions(tableau, max_order: int = MAX_COMPUTED_ORDER) -> list[OrderCondition]:
    """Every order condition Φ(t) = 1/γ(t) for trees with 1..``max_order`` nodes of a :class:`Tableau` or a
    registered scheme name (Butcher 2016, Thm. 315A). A multistep scheme's conditions are its ``conditions()``."""
    scheme = get_scheme(tableau)
    if isinstance(scheme, Multistep):
        raise SchemeError(f"scheme {scheme.name!r} is a multistep method, which has no rooted-tree conditions; its "
                          f"order conditions are get_scheme({scheme.name!r}).conditions().")
    return conditions(scheme, max_order)
