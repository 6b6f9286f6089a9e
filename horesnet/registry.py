"""One registry type for every kind of named thing: schemes, units, placements, datasets, studies, architecture
families, and whatever a later capability adds (docs/extending.md, "One registry type", which also shows how to add
a kind: one :class:`Registry` instance and its ``register_*`` function).

Built-ins (registered before :meth:`Registry.lock_builtins`) are never replaced or removed; every refusal is one
:class:`~horesnet.errors.ConfigError` subclass. Side effects of a registration (a dataset's ConfigStore node, a
study's command-line keys) are derived by :meth:`Registry.on_change` callbacks, so that :meth:`Registry.restore` (the
tests' fixture) restores them too.

Bottom layer: it imports only :mod:`horesnet.errors` and :mod:`horesnet.plugin_errors`.
"""

from __future__ import annotations

import re
import sys
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from .errors import ConfigError, did_you_mean
from .plugin_errors import loading_plugin

T = TypeVar("T")

IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*\Z"
IDENTIFIER_RULE = "use letters, digits and underscores, not starting with a digit"
_PACKAGE = str(Path(__file__).resolve().parent) + "/"
_ALL: list[weakref.ref] = []  # every Registry, in creation order (weak: a test's throwaway registry goes away)

ChangeFn = Callable[[str, Any, Any], None]  # (name, old entry or None, new entry or None)


class RegistryError(ConfigError):
    """A refused registration or an unknown name in a registry (a ConfigError: exit status 2 on a command line)."""


@dataclass(frozen=True)
class Snapshot:
    """What :meth:`Registry.restore` returns a registry to: its entries (in order), origins, built-ins and lock."""

    entries: tuple[tuple[str, Any], ...]
    origins: Mapping[str, str | None]
    builtins: frozenset[str]
    locked: bool


class Registry(Generic[T]):
    """Named entries of one ``kind`` (``"unit"``).

    ``sort``: :meth:`names` sorted (else in registration order). ``hint``: a sentence appended to the unknown-name
    error. ``label``: what that error calls a name (default ``kind``; ``"data.name"``). ``plural``: the kind in
    plural (default ``kind + "s"``). ``error``: the ConfigError subclass raised (default :class:`RegistryError`).
    ``pattern``/``rule``: what a name must match, and the rule in words; ``reserved``: names refused, each with the
    reason. ``unknown``: a function ``(registry, name) -> exception`` replacing the unknown-name error (a registry
    whose message says more, e.g. the schemes' kinds).
    """

    def __init__(self, kind: str, *, sort: bool, hint: str = "", label: str | None = None,
                 plural: str | None = None, error: type[ConfigError] = RegistryError, pattern: str = IDENTIFIER,
                 rule: str = IDENTIFIER_RULE, reserved: Mapping[str, str] | None = None,
                 unknown: Callable[[Registry, Any], BaseException] | None = None) -> None:
        self.kind, self.sort, self.hint = kind, bool(sort), hint
        self.label = label or kind
        self.plural = plural or f"{kind}s"
        self.error = error
        self._pattern, self._rule = re.compile(pattern), rule
        self._reserved = dict(reserved or {})
        self._unknown = unknown
        self._entries: dict[str, T] = {}
        self._origins: dict[str, str | None] = {}
        self._builtins: frozenset[str] = frozenset()
        self._locked = False
        self._callbacks: list[ChangeFn] = []
        _ALL.append(weakref.ref(self))

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} entries, {len(self._builtins)} built in)"

    def names(self) -> list[str]:
        """Every registered name: sorted, or in registration order (the built-ins first)."""
        return sorted(self._entries) if self.sort else list(self._entries)

    def __contains__(self, name) -> bool:
        try:
            return name in self._entries
        except TypeError:  # an unhashable name is never registered
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> list[tuple[str, T]]:
        """``(name, entry)`` in the order of :meth:`names`."""
        return [(name, self._entries[name]) for name in self.names()]

    def values(self) -> list[T]:
        return [self._entries[name] for name in self.names()]

    def get(self, name) -> T:
        """The entry called ``name``; an unknown name is the registry's error naming the closest valid name and
        all of them (``unknown unit 'x'; did you mean 'y'? valid choices: ...``)."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise self.unknown_error(name) from None

    def unknown_error(self, name) -> BaseException:
        if self._unknown is not None:
            return self._unknown(self, name)
        choices = self.names()
        return self.error(f"unknown {self.label} {name!r};{did_you_mean(name, choices)} valid choices: "
                          f"{', '.join(repr(c) for c in choices)}." + (f" {self.hint}" if self.hint else ""))

    def builtins(self) -> list[str]:
        """The names registered before the lock (horesnet's own), in the order of :meth:`names`."""
        return [n for n in self.names() if n in self._builtins]

    def is_builtin(self, name) -> bool:
        return name in self._builtins

    @property
    def locked(self) -> bool:
        return self._locked

    def origin(self, name) -> str | None:
        """Where entry ``name`` was registered: the plugin file being loaded (``plugins=``), else the file outside
        horesnet that called the register function; None for a built-in."""
        self.get(name)
        return self._origins.get(name)

    def origins(self) -> dict[str, str | None]:
        """``{name: origin}`` for every entry (None: built in)."""
        return {name: self._origins.get(name) for name in self.names()}

    def check_new(self, name, *, overwrite: bool = False) -> str:
        """Raise the registry's error unless ``name`` may be registered now (a valid, unreserved name, not a
        built-in, not taken unless ``overwrite``); return it. :meth:`register` checks this first; a register
        function calls it before validating its entry, so a bad name is reported before anything else."""
        if not isinstance(name, str) or not self._pattern.match(name):
            raise self.error(f"invalid {self.kind} name {name!r}: {self._rule}.")
        reason = self._reserved.get(name.lower())
        if reason is not None:
            raise self.error(f"{self.kind} name {name!r} is reserved ({reason}); choose another name.")
        if name in self._builtins:
            raise self.error(f"{self.kind} {name!r} is built in and cannot be replaced; register yours under another "
                             f"name. Built-in {self.plural}: {', '.join(self.builtins())}.")
        if name in self._entries and not overwrite:
            raise self.error(f"{self.kind} {name!r} is already registered; pass overwrite=True to replace it, or "
                             f"choose a new name. Registered {self.plural}: {', '.join(self.names())}.")
        return name

    def register(self, name: str, entry: T, *, overwrite: bool = False) -> T:
        """Add ``entry`` as ``name`` (see :meth:`check_new`) and run the change callbacks; a callback that raises
        undoes the registration (the callbacks that ran are called back with old and new swapped) and its error
        propagates. Returns ``entry``."""
        self.check_new(name, overwrite=overwrite)
        old, old_origin = self._entries.get(name), self._origins.get(name)
        self._entries[name] = entry
        self._origins[name] = _origin() if self._locked else None
        try:
            self._changed(name, old, entry)
        except BaseException:
            if old is None:
                self._entries.pop(name, None)
                self._origins.pop(name, None)
            else:
                self._entries[name], self._origins[name] = old, old_origin
            raise
        return entry

    def unregister(self, name) -> T:
        """Remove entry ``name`` (built-ins are refused) and run the change callbacks; return the entry."""
        if name in self._builtins:
            raise self.error(f"{self.kind} {name!r} is built in and cannot be unregistered.")
        entry = self.get(name)
        del self._entries[name]
        origin = self._origins.pop(name, None)
        try:
            self._changed(name, entry, None)
        except BaseException:
            self._entries[name], self._origins[name] = entry, origin
            raise
        return entry

    def lock_builtins(self) -> None:
        """Make every entry registered so far a built-in (once: later calls change nothing)."""
        if not self._locked:
            self._builtins = frozenset(self._entries)
            self._locked = True

    def on_change(self, fn: ChangeFn) -> ChangeFn:
        """Call ``fn(name, old, new)`` after every change (``old`` None: added; ``new`` None: removed), also when
        :meth:`restore` changes an entry. Usable as a decorator."""
        self._callbacks.append(fn)
        return fn

    def _changed(self, name: str, old, new) -> None:
        done = []
        try:
            for fn in self._callbacks:
                fn(name, old, new)
                done.append(fn)
        except BaseException:
            for fn in reversed(done):  # undo what the earlier callbacks derived
                try:
                    fn(name, new, old)
                except Exception:  # noqa: S110 -- best effort; the first error is the one to report
                    pass
            raise

    def snapshot(self) -> Snapshot:
        return Snapshot(tuple(self._entries.items()), dict(self._origins), self._builtins, self._locked)

    def restore(self, snapshot: Snapshot) -> None:
        """Return to ``snapshot``: entries, their order, origins and built-ins; the change callbacks run for every
        entry that differs (removals first), so what they derive is restored too."""
        before, after = dict(self._entries), dict(snapshot.entries)
        self._entries = dict(snapshot.entries)
        self._origins = dict(snapshot.origins)
        self._builtins, self._locked = snapshot.builtins, snapshot.locked
        removed = [n for n in before if n not in after]
        changed = [n for n in after if before.get(n) is not after[n]]
        for name in removed:
            self._changed(name, before[name], None)
        for name in changed:
            self._changed(name, before.get(name), after[name])


def registries() -> list[Registry]:
    """Every registry that exists, in creation order."""
    alive = [r() for r in _ALL]
    _ALL[:] = [ref for ref, r in zip(list(_ALL), alive, strict=True) if r is not None]
    return [r for r in alive if r is not None]


def find_registry(kind: str) -> Registry:
    """The registry of ``kind`` (``"unit"``); the newest one if several share the kind."""
    for registry in reversed(registries()):
        if registry.kind == kind:
            return registry
    kinds = [r.kind for r in registries()]
    raise RegistryError(f"unknown registry {kind!r};{did_you_mean(kind, kinds)} valid choices: "
                        f"{', '.join(repr(k) for k in kinds)}.")


def snapshot_all() -> dict[Registry, Snapshot]:
    """A snapshot of every registry (the tests' fixture)."""
    return {r: r.snapshot() for r in registries()}


def restore_all(snapshots: Mapping[Registry, Snapshot]) -> None:
    """Restore every registry of ``snapshots``; a locked registry made since (its module was first imported after
    the snapshot) goes back to its built-ins, since all else in it was registered since."""
    for registry in registries():
        snap = snapshots.get(registry)
        if snap is None and registry.locked:
            snap = Snapshot(tuple((n, e) for n, e in registry._entries.items() if n in registry._builtins), {},
                            registry._builtins, True)
        if snap is not None:
            registry.restore(snap)


def _origin() -> str | None:
    """The plugin being loaded, else the first file outside horesnet on the call stack."""
    plugin = loading_plugin()
    if plugin is not None:
        return plugin
    frame = sys._getframe(2)
    while frame is not None:
        file = frame.f_code.co_filename
        if not file.startswith("<") and not str(Path(file).resolve()).startswith(_PACKAGE):
            return file
        frame = frame.f_back
    return None
