"""The registry of analysis studies (:data:`STUDIES`, a :class:`horesnet.registry.Registry`): the built-ins plus
whatever users register (docs/extending_studies.md).

A study is described in one place, a :class:`Study`: how it computes its tables, the plot of each table, its
command-line options (default and schema spec), whether it needs a trained checkpoint and evaluation data, and a
one-line description. ``register_study`` makes it a valid ``study=NAME`` of ``python -m horesnet.analyze`` (and part
of ``study=all``); its options become top-level command-line keys, with their defaults in the composed ``analyze``
config (a Hydra ConfigStore node re-stored on every registration) and their specs in the ``analyze`` schema.
Two studies may share an option (``seed``) when they declare the same default and spec.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..errors import ConfigError
from ..models.config import model_specs
from ..registry import IDENTIFIER, IDENTIFIER_RULE, Registry
from ..spec import BOOL, IN_CONFIG, OPT_POSITIVE_INT, POSITIVE_INT, TEXT, Option, Spec, extend, retract

#: Name of the ConfigStore node holding every registered option's default (listed in ``configs/analyze.yaml``).
OPTIONS_NODE = "analyze_studies"
_NAME, _RULE = re.compile(IDENTIFIER), f"{IDENTIFIER_RULE} (it is a command-line value and a file name)"


def _datasets():
    from ..data.registry import list_datasets

    return list_datasets()


# The keys of python -m horesnet.analyze itself; every registered study adds its own options (lesion's
# ``granularity``, robustness's ``sigmas``, ...) with ``extend`` when it registers (docs/extending_studies.md).
ANALYZE_COMMAND = {  # defaults: horesnet/configs/analyze.yaml
    "ckpt": Option(IN_CONFIG, Spec("text", nullable=True),
                   "a checkpoint or run folder of horesnet.fit (a sweep member folder as the shell gives it: no "
                   "quoting needed)"),
    "study": Option(IN_CONFIG, TEXT, "one study, a list study=[lesion,paths] or study=lesion,paths, or all"),
    "split": Option(IN_CONFIG, Spec("choice", choices=("test", "val")), "the split evaluated"),
    "data_name": Option(IN_CONFIG, Spec("choice", choices=_datasets, nullable=True),
                        "the dataset (null: the checkpoint's own)"),
    "data_root": Option(IN_CONFIG, Spec("text", nullable=True), "its folder (null: the checkpoint's own)"),
    "limit": Option(IN_CONFIG, OPT_POSITIVE_INT, "images evaluated (null: the whole split)"),
    "batch_size": Option(IN_CONFIG, POSITIVE_INT, "evaluation batch size"),
    "out": Option(IN_CONFIG, Spec("text", nullable=True), "output folder (null: <run folder>/analysis)"),
    "device": Option(IN_CONFIG, TEXT, "auto | cpu | cuda"),
    "wandb": Option(IN_CONFIG, Spec("choice", choices=("auto", "online", "offline", "disabled")),
                    "auto: offline without an API key"),
    "fresh": Option(IN_CONFIG, BOOL, "redo studies already written to the output folder (false: keep them, run "
                                     "the rest)"),
    "plugins": Option(IN_CONFIG, Spec("texts"), "modules or .py files that register studies, units, datasets or "
                                                "schemes (docs/extending.md)"),
}

PlotFn = Callable[[list, Path, str], Path]
ComputeFn = Callable[[Any, Any, Mapping[str, Any]], "dict[str, list[dict]]"]


@dataclass(frozen=True)
class Study:
    """One analysis study. ``compute(model, data, options)`` returns ``{table name: list of flat records}`` (``data``
    is an ``EvalData``, or None when ``needs_data`` is false; ``options`` maps each option key to its value);
    ``plots`` maps every table it may write to ``plot(records, path, title) -> path``."""

    name: str
    compute: ComputeFn
    plots: Mapping[str, PlotFn]
    options: Mapping[str, Option]
    needs_checkpoint: bool = True
    needs_data: bool = True
    description: str = ""
    applies: Callable[[Any, Mapping[str, Any]], str | None] | None = None
    cost: Callable[[Any, Mapping[str, Any]], int | None] | None = None

    def skip_reason(self, model, options: Mapping[str, Any]) -> str | None:
        """Why this study cannot apply to ``model`` with ``options`` (one line), or None: checked before any work."""
        return self.applies(model, options) if self.applies else None

    def passes(self, model, options: Mapping[str, Any]) -> int | None:
        """About how many passes over the evaluation data the study makes (its progress bar's total), or None."""
        return self.cost(model, options) if self.cost else None

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(self.plots)

    def values(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """This study's option values from a (plain, resolved) analyze config, each checked against its spec."""
        values = {key: config.get(key, option.default) for key, option in self.options.items()}
        for key, value in values.items():
            self.options[key].spec.check(key, value)
        return values


def _unknown(registry, name) -> ConfigError:
    return registry.error(f"unknown study {name!r}; valid choices: {', '.join(repr(n) for n in registry.names())}. "
                          "Add your own with horesnet.analysis.register_study (docs/extending_studies.md).")


#: every study by name, in registration order (horesnet.registry): horesnet.analysis.studies locks the built-ins
STUDIES: Registry[Study] = Registry(
    "study", sort=False, plural="studies", unknown=_unknown,
    reserved={"all": "study=all runs every registered study"}, rule=_RULE)


@STUDIES.on_change
def _declare_options(name: str, old: Study | None, new: Study | None) -> None:
    """A study's options join the analyze command line (horesnet.spec) and the composed config's defaults (the
    ConfigStore node :data:`OPTIONS_NODE`), and leave them with the study."""
    from hydra.core.config_store import ConfigStore

    if new is None:
        retract("analyze", f"study {name!r}")
    else:
        extend("analyze", f"study {name!r}", dict(new.options))
    ConfigStore.instance().store(name=OPTIONS_NODE, node=defaults(), package="_global_")


list_studies = STUDIES.names  # every registered study's name, in registration order (the built-ins first)
builtin_studies = STUDIES.builtins  # the names of the studies horesnet itself registers
get_study = STUDIES.get  # the study called name; an unknown name is a ConfigError naming the valid choices


def register_study(name: str, compute: ComputeFn, plots: Mapping[str, PlotFn] | PlotFn, *,
                   options: Mapping[str, Option] | None = None, needs_checkpoint: bool = True,
                   needs_data: bool = True, description: str = "", overwrite: bool = False,
                   applies: Callable | None = None, cost: Callable | None = None) -> Study:
    """Validate and register a study; return its :class:`Study`.

    ``applies(model, options)`` (optional) returns why the study cannot apply to a network (one line; ``analyze``
    then skips it at once) or None; ``cost(model, options)`` (optional) the passes it makes over the evaluation
    data, for its progress bar's ETA. ``options`` hold the values after :meth:`Study.values` (a null default of an
    option may be sized to the network by ``compute`` itself).

    ``plots`` is ``{table name: plot}`` or one plot function for a study writing the single table ``name``.
    Refused (ConfigError, a ValueError): a name or key that is not identifier-like, ``all``, a table another study
    writes, an option that is a key of the command itself or a model key, an option another study declares
    differently, a default its own spec refuses. Re-using a name needs ``overwrite=True``; built-in studies are
    never replaced.
    """
    STUDIES.check_new(name, overwrite=overwrite)
    if not callable(compute):
        raise ConfigError(f"study {name!r}: compute must be a function (model, data, options) -> tables.")
    plots = {name: plots} if callable(plots) else dict(plots or {})
    if not plots:
        raise ConfigError(f"study {name!r}: give the plot function of every table it writes.")
    others = {n: s for n, s in STUDIES.items() if n != name}
    for table, plot in plots.items():
        _check_identifier(f"study {name!r}: table name", table)
        if not callable(plot):
            raise ConfigError(f"study {name!r}: the plot of table {table!r} must be a function "
                              "(records, path, title) -> path.")
        owner = next((n for n, s in others.items() if table in s.plots), None)
        if owner:
            raise ConfigError(f"study {name!r}: table {table!r} is already written by study {owner!r}.")
    options = dict(options or {})
    _check_options(name, options, others)
    for what, fn in (("applies", applies), ("cost", cost)):
        if fn is not None and not callable(fn):
            raise ConfigError(f"study {name!r}: {what} must be a function (model, options) or None.")
    study = Study(name, compute, MappingProxyType(plots), MappingProxyType(options), bool(needs_checkpoint),
                  bool(needs_data), str(description), applies, cost)
    return STUDIES.register(name, study, overwrite=overwrite)  # its options follow (on_change)


def unregister_study(name: str) -> None:
    """Remove a user-registered study and the options no other study declares (built-ins cannot be removed)."""
    STUDIES.unregister(name)


def _check_identifier(what: str, name) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"invalid {what} {name!r}: {_RULE}.")


def _check_options(name: str, options: dict, others: dict[str, Study]) -> None:
    for key, option in options.items():
        _check_identifier(f"study {name!r}: option", key)
        if key in ANALYZE_COMMAND or key in model_specs() or key == "study":
            raise ConfigError(f"study {name!r}: option {key!r} is already a key of python -m horesnet.analyze "
                             "(the command's own keys and the model keys); choose another name.")
        if not isinstance(option, Option) or not isinstance(option.spec, Spec):
            raise ConfigError(f"study {name!r}: option {key!r} must be an Option(default, Spec(...), help).")
        try:
            option.spec.check(key, option.default)
        except ConfigError as err:
            raise ConfigError(f"study {name!r}: the default of option {key!r} is refused by its own spec: "
                             f"{err}") from None
        for other, study in others.items():
            theirs = study.options.get(key)
            if theirs is not None and (theirs.spec != option.spec or theirs.default != option.default):
                raise ConfigError(f"study {name!r}: option {key!r} is already declared by study {other!r} as "
                                 f"{theirs.spec.describe()} with default {theirs.default!r}; a shared option "
                                 "needs the same default and spec.")


def defaults() -> dict[str, Any]:
    """Every registered option with its default (what ``configs/analyze.yaml`` composes), in registration order."""
    out = {}
    for study in STUDIES.values():
        for key, option in study.options.items():
            out.setdefault(key, list(option.default) if isinstance(option.default, tuple) else option.default)
    return out
