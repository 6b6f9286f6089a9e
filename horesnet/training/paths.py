"""The run, sweep and member folders a command line will write, checked before anything is: each name at most
255 bytes, the whole path at most 4095, no existing file where a folder must be, the folder writable
(docs/reliability.md, section 1)."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError, check_writable

NAME_MAX = 255  # Linux's limit on a name in a folder, in bytes (check_writable checks it too, without ``names``)


def hydra_value(argv: list[str], key: str) -> str | None:
    """The value of ``key`` (``hydra.run.dir``) on the command line, also when given as ``+key=`` or ``++key=``."""
    found = None
    for a in argv:
        if a.lstrip("+").startswith(key + "="):
            found = a.split("=", 1)[1].strip("'\"")
    return found


def check_path(option: str, folder: str, names: dict[str, str] | None = None) -> None:
    """Refuse a folder whose path is too long for the file system or runs into a file; ``names`` maps a component
    to the option that made it (``name=``), so that the message names what to shorten. The whole path's length, a
    file in the way and writability are ``check_writable``'s."""
    path = Path(folder).expanduser().absolute()
    for part in path.parts:
        size = len(os.fsencode(part))
        if size > NAME_MAX:
            given = next((f"{key}={value[:40]!r}..." for value, key in (names or {}).items() if value in part),
                         f"{option}={str(folder)[:60]!r}...")
            raise ConfigError(f"{given} makes a folder name of {size} bytes ({part[:40]!r}...), more than the "
                              f"{NAME_MAX} bytes a file system allows in one name; valid: names of at most "
                              f"{NAME_MAX} bytes. Give a shorter one.")
    check_writable(option, folder)


def check_sweep_paths(argv: list[str], members: list[list[str]]) -> None:
    """A sweep's folder and its members' subfolders (``-m``), named as Hydra names them
    (``hydra.job.override_dirname``: a member's overrides, sorted, less the keys fit.yaml excludes)."""
    from omegaconf import OmegaConf

    sweep = hydra_value(argv, "hydra.sweep.dir")
    option = "hydra.sweep.dir"
    if sweep is None:
        sweep, option = "multirun", "the sweep folder (hydra.sweep.dir, default multirun/<time>)"
    check_path(option, sweep)
    fit = OmegaConf.load(Path(__file__).parent.parent / "configs" / "fit.yaml")
    excluded = list(fit.hydra.job.config.override_dirname.exclude_keys)
    for overrides in members:
        sub = ",".join(sorted(o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in excluded))
        check_path("the sweep member folder (hydra.sweep.subdir)", f"{sweep}/{sub}")
