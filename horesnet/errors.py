"""One error type for bad configuration, with messages that name the bad value and the valid choices."""

from __future__ import annotations

from collections.abc import Iterable


class ConfigError(ValueError):
    """A bad option value (unknown block, impossible depth, ...). The message is one readable paragraph."""


PLUGIN_HINT = "A plugin adds more: plugins=[your_file.py] (docs/extending.md)."


def did_you_mean(value, choices: Iterable) -> str:
    """`` did you mean 'rk4'?`` for the closest of ``choices`` to a mistyped ``value`` ('' when none is close)."""
    import difflib

    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1, cutoff=0.75)
    return f" did you mean {close[0]!r}?" if close else ""


def check_choice(option: str, value, choices: Iterable, hint: str = "") -> None:
    """Raise ConfigError unless ``value`` is one of ``choices`` (``hint``: a sentence appended to the message)."""
    choices = list(choices)
    if value not in choices:
        raise ConfigError(f"unknown {option} {value!r};{did_you_mean(value, choices)} valid choices: "
                          f"{', '.join(repr(c) for c in choices)}." + (f" {hint}" if hint else ""))


def unknown_option(key: str, valid: Iterable[str], where: str = "") -> ConfigError:
    """The error for a key no schema declares: the closest valid key first, then all of them."""
    valid = sorted(valid)
    return ConfigError(f"unknown option {key!r};{did_you_mean(key, valid)} valid options{where}: {', '.join(valid)}.")


def check_writable(option: str, folder) -> None:
    """Raise ConfigError unless ``folder`` exists as a writable folder or could be created (checked before any
    work, so that hours of analysis are not lost to an unwritable output path)."""
    import os
    import tempfile
    from pathlib import Path

    path = Path(folder).expanduser().absolute()
    for part in path.parts:  # Linux's limits: 255 bytes a name, 4095 a path
        if len(os.fsencode(part)) > 255:
            raise ConfigError(f"{option}={str(folder)[:60]!r}... has a name of {len(os.fsencode(part))} bytes "
                              f"({part[:40]!r}...), more than the 255 bytes a file system allows in one name; valid: "
                              "names of at most 255 bytes. Give a shorter one.")
    if len(os.fsencode(str(path))) > 4095:
        raise ConfigError(f"{option}={str(folder)[:60]!r}... is a path of {len(os.fsencode(str(path)))} bytes, more "
                          "than the 4095 a path may have; valid: a path of at most 4095 bytes. Give a shorter one.")
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"{option}={str(folder)!r} cannot be made: {probe} is an existing file, not a folder. "
                          "Give a folder (an existing one or a new path).")
    try:  # really try (permission bits say nothing for root, nor for read-only or virtual file systems)
        os.rmdir(tempfile.mkdtemp(prefix=".horesnet-write-test-", dir=probe))
    except OSError:
        raise ConfigError(f"{option}={str(folder)!r} cannot be written: {probe} is not a writable folder. "
                          "Give a folder you can write to.") from None
