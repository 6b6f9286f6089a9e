"""A plain dict registry of named tableaux: the built-ins plus whatever users register.

A registered name is usable everywhere a scheme is accepted (``block=NAME`` in the CLI, comparisons,
analysis). Names are identifier-like (letters, digits, underscore; not starting with a digit) and
``ode`` is reserved for the continuous-depth reference block. Besides the built-in methods it holds the
compatibility scheme ``ho2021_rk8_published`` (:mod:`horesnet.schemes.compat`), which carries a warning.
"""

from __future__ import annotations

import difflib
import math
import re
import warnings

from .builtin import BUILTIN_TABLEAUX
from .compat import ho2021_rk8_published
from .errors import SchemeError
from .order import MAX_COMPUTED_ORDER, OrderCondition, conditions
from .tableau import Tableau

RESERVED_NAMES = frozenset({"ode"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

_REGISTRY: dict[str, Tableau] = {t.name: t for t in BUILTIN_TABLEAUX}
COMPAT_TABLEAUX: tuple[Tableau, ...] = (ho2021_rk8_published(_REGISTRY["rk8"]),)
_REGISTRY.update({t.name: t for t in COMPAT_TABLEAUX})
BUILTIN_NAMES = frozenset(_REGISTRY)


def list_schemes() -> list[str]:
    """Sorted names of all registered schemes."""
    return sorted(_REGISTRY)


def _unknown(name) -> SchemeError:
    close = difflib.get_close_matches(str(name).lower(), list_schemes(), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return SchemeError(
        f"unknown scheme {name!r}; valid schemes: {', '.join(list_schemes())}.{hint} "
        "Add your own with horesnet.schemes.register_scheme(name, A, b)."
    )


def get_scheme(name: str | Tableau) -> Tableau:
    """The registered tableau called ``name``; a :class:`Tableau` passed in is returned unchanged."""
    if isinstance(name, Tableau):
        return name
    if not isinstance(name, str):
        raise SchemeError(
            f"a scheme must be given as a name (str) or a Tableau; got {name!r} of type "
            f"{type(name).__name__}. Valid schemes: {', '.join(list_schemes())}."
        )
    try:
        return _REGISTRY[name]
    except KeyError:
        raise _unknown(name) from None


def _check_name(name) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise SchemeError(
            f"invalid scheme name {name!r}: use letters, digits and underscores, not starting with a "
            "digit (e.g. 'my_rk3')."
        )
    if name.lower() in RESERVED_NAMES:
        raise SchemeError(
            f"scheme name {name!r} is reserved (block=ode is the continuous-depth Neural ODE reference); "
            "choose another name."
        )
    return name


def register_scheme(name: str, A, b, *, description: str = "", warning: str = "",
                    overwrite: bool = False) -> Tableau:
    """Validate (A, b), register it as ``name`` and return the :class:`Tableau`.

    Inconsistent tableaux (Σb != 1) are accepted; their computed order is 0 and ``consistent`` is
    False. A non-empty ``warning`` flags the scheme: every network built of it issues that text as a
    ``UserWarning`` (:func:`warn_flagged`). Re-using a name needs ``overwrite=True``; built-in schemes can never be
    replaced.
    """
    _check_name(name)
    if name in BUILTIN_NAMES:
        raise SchemeError(
            f"scheme {name!r} is built in and cannot be replaced; register your tableau under another "
            f"name. Built-in schemes: {', '.join(sorted(BUILTIN_NAMES))}."
        )
    if name in _REGISTRY and not overwrite:
        raise SchemeError(
            f"scheme {name!r} is already registered; pass overwrite=True to replace it, or choose a new "
            f"name. Registered schemes: {', '.join(list_schemes())}."
        )
    tableau = Tableau(name, A, b, description=description, warning=warning)
    _REGISTRY[name] = tableau
    return tableau


def warn_flagged(*names, stacklevel: int = 2) -> None:
    """Issue the registered warning of each flagged scheme among ``names`` as a ``UserWarning`` (which the command
    lines print on stderr); None and ``ode`` are skipped. ``stacklevel`` counts from the caller, as in
    :func:`warnings.warn`."""
    for name in dict.fromkeys(n for n in names if n is not None and n not in RESERVED_NAMES):
        tab = get_scheme(name)
        if tab.warning:
            warnings.warn(f"scheme {tab.name!r} (computed order {tab.order}, sum(b) = {math.fsum(tab.b):.6g}): "
                          f"{tab.warning}", UserWarning, stacklevel=stacklevel + 1)


def unregister_scheme(name: str) -> None:
    """Remove a user-registered scheme (built-ins cannot be removed)."""
    if name in BUILTIN_NAMES:
        raise SchemeError(f"scheme {name!r} is built in and cannot be unregistered.")
    if name not in _REGISTRY:
        raise _unknown(name)
    del _REGISTRY[name]


def order_conditions(tableau, max_order: int = MAX_COMPUTED_ORDER) -> list[OrderCondition]:
    """Every order condition Φ(t) = 1/γ(t) for trees with 1..``max_order`` nodes of a :class:`Tableau` or a
    registered scheme name (Butcher 2016, Thm. 315A)."""
    return conditions(get_scheme(tableau), max_order)
