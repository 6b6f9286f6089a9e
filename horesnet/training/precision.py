"""The ``trainer.precision`` values Lightning's Trainer accepts (a test keeps this list equal to Lightning's own)."""

from __future__ import annotations

PRECISIONS = ("transformer-engine", "transformer-engine-float16", "16-true", "16-mixed", "bf16-true", "bf16-mixed",
              "32-true", "64-true", 64, 32, 16, "64", "32", "16", "bf16")


def lightning_precisions() -> tuple:
    """The same list, read from the installed Lightning."""
    import typing

    from lightning_fabric import connector

    names = ("_PRECISION_INPUT_STR", "_PRECISION_INPUT_INT", "_PRECISION_INPUT_STR_ALIAS")
    return tuple(v for n in names if hasattr(connector, n) for v in typing.get_args(getattr(connector, n)))
