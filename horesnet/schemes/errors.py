"""The error of the scheme registry and tableaux."""

from __future__ import annotations

from ..errors import ConfigError


class SchemeError(ConfigError):
    """A bad tableau or scheme name. A ValueError whose message names the bad value and what is valid."""
