"""A key's type and range (:class:`Spec`), the one option type (:class:`Option`: default, spec, one line of help) and
the specs most keys share. The model config, the datasets' and the studies' own options and the command lines' keys
are all declared as Options; validation, ``--help`` and the config schema are derived from them
(docs/reliability.md, docs/extending.md)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError, did_you_mean

_NOUNS = {"bool": "true or false", "text": "a string", "int": "an integer", "real": "a finite number",
          "ints": "a list of integers", "reals": "a list of finite numbers", "texts": "a list of strings",
          "section": "a group of options"}


@dataclass(frozen=True)
class Spec:
    """``kind``: bool | int | real | text | choice | ints | reals | texts | section | free. ``section``: a group of
    keys checked one by one (or null); ``free``: anything (published numbers). ``low``/``high`` bound numbers
    (``open_low``: strictly above ``low``); ``choices`` is a tuple or a function returning one (registries)."""

    kind: str
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    choices: tuple | Callable[[], Iterable] | None = None
    nullable: bool = False
    hint: str = ""

    def describe(self) -> str:
        if self.kind == "choice":
            text = "one of " + ", ".join(repr(c) for c in self.valid_choices())
        else:
            text = _NOUNS.get(self.kind, "any value")
        if self.kind in ("int", "real", "ints", "reals"):
            bounds = [f"{'>' if self.open_low else '>='} {_number(self.low)}"] if self.low is not None else []
            bounds += [f"{'<' if self.open_high else '<='} {_number(self.high)}"] if self.high is not None else []
            text += ((" each " if self.kind in ("ints", "reals") else " ") + " and ".join(bounds)) if bounds else ""
        return text + (" (or null)" if self.nullable else "")

    def valid_choices(self) -> list:
        return list(self.choices() if callable(self.choices) else self.choices or ())

    def check(self, key: str, value) -> None:
        if value is None:
            if self.nullable:
                return
            raise ConfigError(f"{key}=null is not allowed; {key} must be {self.describe()}.")
        if self.kind == "free":
            return
        if not self._ok(value):
            close = did_you_mean(value, self.valid_choices()) if self.kind == "choice" else ""
            raise ConfigError(f"bad value {key}={_show(value)};{close} {key} must be {self.describe()}."
                              + (f" {self.hint}" if self.hint else ""))

    def _ok(self, value, kind: str | None = None) -> bool:
        kind = kind or self.kind
        if kind in ("ints", "reals", "texts"):  # a list (of numbers: not empty), each item checked as int/real/text
            return (isinstance(value, list | tuple) and (len(value) > 0 or kind == "texts")
                    and all(self._ok(v, kind[:-1]) for v in value))
        if kind in ("bool", "text"):
            return isinstance(value, bool if kind == "bool" else str)
        if kind == "choice":
            return not isinstance(value, bool) and value in self.valid_choices()
        if kind == "section" or isinstance(value, bool) or not isinstance(value, int | float):
            return False  # a section: a group given as a single value
        if (kind == "int" and not isinstance(value, int)) or not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.open_low else value < self.low):
            return False
        return not (self.high is not None and (value >= self.high if self.open_high else value > self.high))


def _number(x) -> str:
    """A bound as written: integers in full (seed's 4294967295, not 4.29497e+09), other numbers short."""
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e16 else f"{x:g}"


def _show(value) -> str:
    return repr(value) if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class Option:
    """One option: its ``default``, the :class:`Spec` every value must satisfy and one line of ``help``. A command
    line's key whose default lives in a YAML config of ``horesnet/configs`` (``data.batch_size``, ``trainer.*``)
    has ``default=IN_CONFIG``: ``--help`` reads it from the composed config instead of a copy."""

    default: Any
    spec: Spec
    help: str = ""


class _InConfig:
    def __repr__(self) -> str:
        return "IN_CONFIG"


IN_CONFIG: Any = _InConfig()  # the default is the composed YAML config's value


def specs_of(options: dict[str, Option]) -> dict[str, Spec]:
    """``{key: spec}`` of ``{key: Option}``."""
    return {key: option.spec for key, option in options.items()}


BOOL, TEXT, FREE = Spec("bool"), Spec("text"), Spec("free", nullable=True)
POSITIVE_INT, COUNT = Spec("int", low=1), Spec("int", low=0)
OPT_POSITIVE_INT = Spec("int", low=1, nullable=True)
POSITIVE = Spec("real", low=0, open_low=True)
NON_NEGATIVE = Spec("real", low=0)


# ------------------------------------------------------------------------ options that registrations add
_EXTENSIONS: dict[str, dict[str, dict[str, Option]]] = {}  # command -> owner -> {key: option}


def extend(command: str, owner: str, options: dict[str, Option | Spec]) -> None:
    """Declare the keys that a registration (``owner``: e.g. ``"dataset my_data"``, ``"study lesion"``) adds to the
    command line of ``command`` (``fit``, ``analyze``, ``info``), replacing what ``owner`` declared before. A key
    another owner declares with a different spec is refused (ValueError)."""
    options = {key: o if isinstance(o, Option) else Option(IN_CONFIG, o) for key, o in options.items()}
    for key, option in options.items():
        for other, theirs in _EXTENSIONS.get(command, {}).items():
            if other != owner and key in theirs and theirs[key].spec != option.spec:
                raise ValueError(f"option {key!r} is already declared by {other} as {theirs[key].spec.describe()}")
    _EXTENSIONS.setdefault(command, {})[owner] = options


def retract(command: str, owner: str) -> None:
    """Withdraw every key ``owner`` declared for ``command`` (keys another owner declares stay)."""
    _EXTENSIONS.get(command, {}).pop(owner, None)


def extension_options(command: str) -> dict[str, Option]:
    """Every key the registrations add to ``command``, as declared."""
    return {key: option for options in _EXTENSIONS.get(command, {}).values() for key, option in options.items()}
