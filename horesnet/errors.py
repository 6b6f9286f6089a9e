"""One error type for bad configuration, with messages that name the bad value and the valid choices."""

from __future__ import annotations

from collections.abc import Iterable


class ConfigError(ValueError):
    """A bad option value (unknown block, impossible depth, ...). The message is one readable paragraph."""


PLUGIN_HINT = "A plugin adds more: plugins=[your_file.py] (docs/extending.md)."


def check_choice(option: str, value, choices: Iterable, hint: str = "") -> None:
    """Raise ConfigError unless ``value`` is one of ``choices`` (``hint``: a sentence appended to the message)."""
    choices = list(choices)
    if value not in choices:
        raise ConfigError(
            f"unknown {option} {value!r}; valid choices: {', '.join(repr(c) for c in choices)}."
            + (f" {hint}" if hint else "")
        )


def check_writable(option: str, folder) -> None:
    """Raise ConfigError unless ``folder`` exists as a writable folder or could be created (checked before any
    work, so that hours of analysis are not lost to an unwritable output path)."""
    import os
    import tempfile
    from pathlib import Path

    path = Path(folder).expanduser().absolute()
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:  # really try (permission bits say nothing for root, nor for read-only or virtual file systems)
        os.rmdir(tempfile.mkdtemp(prefix=".horesnet-write-test-", dir=probe))
    except OSError:
        raise ConfigError(f"{option}={str(folder)!r} cannot be written: {probe} is not a writable folder. "
                          "Give a folder you can write to.") from None
