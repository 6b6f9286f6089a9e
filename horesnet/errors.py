"""One error type for bad configuration, with messages that name the bad value and the valid choices."""

from __future__ import annotations

from collections.abc import Iterable


class ConfigError(ValueError):
    """A bad option value (unknown block, impossible depth, ...). The message is one readable paragraph."""


def check_choice(option: str, value, choices: Iterable) -> None:
    """Raise ConfigError unless ``value`` is one of ``choices``."""
    choices = list(choices)
    if value not in choices:
        raise ConfigError(
            f"unknown {option} {value!r}; valid choices: {', '.join(repr(c) for c in choices)}."
        )
