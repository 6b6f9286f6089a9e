"""``python -m horesnet.compare PATH... [out=DIR] [allow_unfair=true] [wandb=true]``: compare trained variants
(the table, statistics and figure: ``horesnet.comparison``)."""

from __future__ import annotations

import sys
from pathlib import Path

from ..comparison.table import compare, markdown
from ..errors import ConfigError

OPTIONS = {"out": None, "allow_unfair": "false", "wandb": "false", "wandb_project": "horesnet"}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from .help import print_help, wants_help

    if wants_help(argv):
        return print_help("compare", argv)
    opts, paths = dict(OPTIONS), []
    for a in argv:
        key, sep, value = a.partition("=")
        if sep and key in OPTIONS:
            opts[key] = value
        elif sep and not Path(a).exists():
            print(f"horesnet.compare: error: unknown option {key!r}; valid: {', '.join(OPTIONS)}.", file=sys.stderr)
            return 2
        else:
            paths.append(a)
    try:
        if not paths:
            raise ConfigError("give at least one run folder or multirun root, "
                              "e.g. python -m horesnet.compare multirun/X")
        flags = {}
        for k in ("allow_unfair", "wandb"):
            if opts[k].lower() not in ("true", "false"):
                raise ConfigError(f"{k} must be true or false, got {opts[k]!r}.")
            flags[k] = opts[k].lower() == "true"
        rows, problems, out_dir = compare(paths, opts["out"], flags["allow_unfair"], flags["wandb"],
                                          opts["wandb_project"])
    except ConfigError as err:
        print(f"horesnet.compare: error: {err}", file=sys.stderr)
        return 2
    print(markdown(rows, problems))
    print(f"wrote {out_dir}/comparison.md, comparison.csv, comparison.png")
    return 0

