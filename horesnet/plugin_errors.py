"""A plugin's failure reported as a plugin error (exit status 2): what failed, the plugin's file and line (the last
frame of the traceback in that file) and the exception, never a traceback, a success or another exit status. Covers
``SystemExit`` and ``KeyboardInterrupt`` raised by plugin code too (docs/extending.md, docs/reliability.md)."""

from __future__ import annotations

import inspect
import traceback
from pathlib import Path

from .errors import ConfigError

# what plugin code may raise that must not end the command as itself (sys.exit(0) would report success, 3 divergence)
CAUGHT = (Exception, SystemExit, KeyboardInterrupt)


def source_file(obj) -> str | None:
    try:
        return inspect.getsourcefile(obj) or inspect.getfile(obj)
    except TypeError:
        return None


def is_plugin(obj) -> bool:
    """Whether ``obj`` (a factory, a class) comes from outside horesnet (a plugin's or a user's code)."""
    return not str(getattr(obj, "__module__", "") or "").startswith("horesnet.")


def where(err: BaseException, file: str | None) -> str:
    """``path:line`` of the last traceback frame in ``file`` (else the last frame of all)."""
    frames = traceback.extract_tb(err.__traceback__)
    if not frames:
        return file or "?"
    target = str(Path(file).resolve()) if file else None
    mine = [f for f in frames if target and str(Path(f.filename).resolve()) == target]
    frame = (mine or frames)[-1]
    return f"{frame.filename}:{frame.lineno}"


def describe(err: BaseException) -> str:
    if isinstance(err, SystemExit):
        return f"it called sys.exit({err.code!r})"
    if isinstance(err, KeyboardInterrupt):
        return "it raised KeyboardInterrupt"
    return f"{type(err).__name__}: {err}"


def plugin_error(what: str, err: BaseException, file: str | None) -> ConfigError:
    """The ConfigError for plugin code that failed: ``what`` (``plugins: importing 'x.py'``, ``unit 'u': its
    factory``) at the plugin's file and line, and the exception."""
    return ConfigError(f"plugin error: {what} failed at {where(err, file)}: {describe(err)}. This is the plugin's "
                       "code, not horesnet's; fix the plugin (docs/extending.md).")


LOADED: dict[str, object] = {}  # the plugins loaded so far, by name (filled by horesnet.plugins, which imports us)
# the plugins being imported now, innermost last (a plugin may load another): what a registry records as the origin
# of what they register (horesnet.registry)
LOADING: list[str] = []


def loading_plugin() -> str | None:
    """The file (or module name) of the plugin being imported now, else None."""
    return LOADING[-1] if LOADING else None


def from_plugin(err: BaseException) -> str | None:
    """The plugin file in which ``err`` was raised (its traceback's last frame in a loaded plugin), else None."""
    files = {str(Path(m.__file__).resolve()) for m in LOADED.values() if getattr(m, "__file__", None)}
    frames = [f for f in traceback.extract_tb(err.__traceback__) if str(Path(f.filename).resolve()) in files]
    return frames[-1].filename if frames else None
