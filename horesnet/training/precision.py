"""The precision values Lightning's Trainer accepts, read from Lightning itself (so a new release stays in step)."""

from __future__ import annotations

import typing


def _lightning_precisions() -> tuple:
    from lightning_fabric import connector

    names = ("_PRECISION_INPUT_STR", "_PRECISION_INPUT_INT", "_PRECISION_INPUT_STR_ALIAS")
    return tuple(v for n in names if hasattr(connector, n) for v in typing.get_args(getattr(connector, n)))


PRECISIONS = _lightning_precisions() or ("16-mixed", "bf16-mixed", "32-true", "64-true", "bf16-true", "16-true")
