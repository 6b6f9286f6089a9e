"""``python -m horesnet.compare PATH... [out=DIR] [allow_unfair=true] [wandb=true]``: compare trained variants
(the table, statistics and figure: ``horesnet.comparison``)."""

from __future__ import annotations

from pathlib import Path

from ..comparison.table import compare, markdown
from ..errors import ConfigError
from .command import run_command
from .schema import OPTIONS as SCHEMA

OPTIONS = SCHEMA["compare"]  # out, allow_unfair, wandb, wandb_project: declared once, with --help's text


def main(argv: list[str] | None = None) -> int:
    return run_command("compare", argv, _compare)


def _compare(argv: list[str]) -> int:
    opts, paths = {key: option.default for key, option in OPTIONS.items()}, []
    for a in argv:
        key, sep, value = a.partition("=")
        if sep and key in OPTIONS:
            opts[key] = value
        elif sep and not Path(a).exists():
            raise ConfigError(f"unknown option {key!r}; valid: {', '.join(OPTIONS)}.")
        else:
            paths.append(a)
    if not paths:
        raise ConfigError("give at least one run folder or multirun root, e.g. python -m horesnet.compare multirun/X")
    for key, option in OPTIONS.items():
        if option.spec.kind == "bool" and isinstance(opts[key], str):
            if opts[key].lower() not in ("true", "false"):
                raise ConfigError(f"{key} must be true or false, got {opts[key]!r}.")
            opts[key] = opts[key].lower() == "true"
        option.spec.check(key, opts[key])
    rows, problems, out_dir = compare(paths, opts["out"], opts["allow_unfair"], opts["wandb"], opts["wandb_project"])
    print(markdown(rows, problems))
    print(f"wrote {out_dir}/comparison.md, comparison.csv, comparison.png")
    return 0
