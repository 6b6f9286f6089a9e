"""Plugins: the user's own modules that register units, datasets, studies or schemes (docs/extending.md).

A plugin is a Python module name (``my_lab.units``) or a ``.py`` file path, named on the command line with
``plugins=[a,b]`` or in ``$HORESNET_PLUGINS`` (comma-separated). It is imported once, before the command line is
composed, so what it registers is a valid choice there (``unit=my_unit``, ``data=my_data``, ``study=my_study``).
Nothing is ever imported because a checkpoint names it: a checkpoint of a network built from a plugin needs the
same ``plugins=`` when it is analysed.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

from .errors import ConfigError
from .plugin_errors import CAUGHT, LOADED, LOADING, plugin_error

ENV_PLUGINS = "HORESNET_PLUGINS"


def plugins_from_argv(argv: list[str]) -> list[str]:
    """The plugins named by ``plugins=...`` overrides in ``argv`` and by ``$HORESNET_PLUGINS``."""
    names = [p for p in os.environ.get(ENV_PLUGINS, "").split(",") if p.strip()]
    for item in argv:
        key, sep, value = item.partition("=")
        if sep and key.lstrip("+~") == "plugins":
            names += [p for p in value.strip().strip("[]").split(",") if p.strip() and p.strip() != "null"]
    return [n.strip().strip("'\"") for n in names]


def load_plugins(names) -> list[object]:
    """Import each plugin (module name or ``.py`` path) once; a plugin that cannot be imported is a ConfigError
    naming it and the reason."""
    return [_load(str(name)) for name in names or ()]


def _load(name: str):
    path = Path(name).expanduser()
    key = str(path.resolve()) if name.endswith(".py") else name
    if key in LOADED:
        return LOADED[key]
    LOADING.append(key)  # what a registry records as the origin of what the plugin registers
    try:
        if name.endswith(".py"):
            if not path.is_file():
                raise ConfigError(f"plugins: no such file {name!r}; give a .py file or an importable module name.")
            module_name = f"horesnet_plugin_{path.stem}"
            spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            sys.path.insert(0, str(path.resolve().parent))  # a plugin file may import its neighbours
            try:
                spec.loader.exec_module(module)
            finally:
                sys.path.remove(str(path.resolve().parent))
        else:
            LOADING[-1] = _module_file(name)
            module = importlib.import_module(name)
    except ConfigError:
        raise
    except ModuleNotFoundError as err:
        raise ConfigError(f"plugins: cannot import {name!r} ({err}); give a .py file or a module on "
                          "the Python path.") from None
    except CAUGHT as err:  # the user's module failed while registering (sys.exit too): say which, where and why
        raise plugin_error(f"plugins: importing {name!r}", err, key if name.endswith(".py") else None) from None
    finally:
        LOADING.pop()
    LOADED[key] = module
    return module


def _module_file(name: str) -> str:
    """The file of module ``name`` as found before importing it (the name itself when it cannot be found)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):  # import_module reports it
        return name
    return spec.origin if spec is not None and spec.origin else name
