"""Command-line values that need no Hydra quoting knowledge.

A sweep member's folder is named after its overrides (``multirun/x/block=midpoint,seed=0``): given to ``ckpt=`` as
the shell passes it, Hydra's override grammar reads its ``=`` and ``,`` as syntax. Path-valued keys are therefore
quoted for Hydra here, before composing; a bare path of an existing file or folder is taken as the checkpoint;
and a list of studies may be written ``study=a,b`` or ``study=[a,b]``.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError

#: Keys whose values are file or folder paths, taken verbatim.
PATH_KEYS = {"analyze": ("ckpt", "out", "data_root"), "fit": ("resume",)}


def hydra_quote(value: str) -> str:
    """``value`` as one Hydra quoted string (taken literally: ``=``, ``,``, brackets and spaces included)."""
    if value[:1] in ("'", '"') and value[-1:] == value[:1] and len(value) > 1:
        return value  # already quoted by the user
    if value in ("", "null"):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _study_list(value: str) -> str:
    """``a,b`` and ``[a,b]`` (Hydra's list syntax) as the one string ``'a,b'`` that analyze splits."""
    inner = value.strip()
    if inner[:1] in ("'", '"'):
        return value
    if inner.startswith("[") and inner.endswith("]"):
        inner = inner[1:-1]
    names = [n.strip().strip("'\"") for n in inner.split(",")]
    return hydra_quote(",".join(names))


def normalise(command: str, argv: list[str]) -> list[str]:
    """``argv`` of ``horesnet.<command>`` with path values quoted for Hydra, a bare existing path made the
    ``ckpt=`` of analyze, and ``study=`` lists made one string."""
    keys = PATH_KEYS.get(command, ())
    out = []
    for item in argv:
        key, sep, value = item.partition("=")
        bare = key.lstrip("+~")
        if sep and bare in keys:
            out.append(f"{key}={hydra_quote(value)}")
        elif command == "analyze" and sep and bare == "study":
            out.append(f"{key}={_study_list(value)}")
        elif command == "analyze" and not item.startswith("-") and ("=" not in item or "/" in item) \
                and Path(item).exists():
            out.append(f"ckpt={hydra_quote(item)}")
        else:
            out.append(item)
    if command == "analyze":
        given = [o.partition("=")[2] for o in out if o.partition("=")[0].lstrip("+~") == "ckpt"]
        if len(given) > 1:
            raise ConfigError(
                f"analyze takes one checkpoint or run folder, got {len(given)}: {', '.join(given)} (a glob that "
                "names several sweep members, or ckpt= given twice). Narrow the glob, or analyse each one with its "
                "own command, e.g. for d in multirun/X/*/; do python -m horesnet.analyze \"$d\" study=...; done")
    return out
