"""Check a command line before anything is written: every sweep member composes, its model builds, its data
exists (or can be fetched), its optimiser and trainer options are valid."""

from __future__ import annotations

import inspect
import itertools

import pytorch_lightning as pl
from omegaconf import OmegaConf

from ..config import compose, model_kwargs
from ..data import ArrayDataModule, check_available
from ..errors import ConfigError, check_choice
from ..models import build_model
from .loggers import WANDB_MODES
from .optim import OPTIMIZERS, SCHEDULES

TRAINER_KEYS = set(inspect.signature(pl.Trainer.__init__).parameters) - {"self", "logger", "callbacks", "plugins"}


def expand_overrides(argv: list[str], max_members: int = 256) -> list[list[str]]:
    """The override lists of every sweep member (one list when not sweeping); hydra.* and flags dropped."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    multirun = any(a in ("-m", "--multirun") for a in argv)
    items = [a for a in argv if not a.startswith("-") and not a.startswith(("hydra.", "hydra/", "+hydra"))]
    try:
        parsed = OverridesParser.create().parse_overrides(items)
    except Exception as err:  # noqa: BLE001 -- hydra raises its own grammar errors
        raise ConfigError(f"bad command-line override: {err}") from None
    choices = []
    for o in parsed:
        if o.is_sweep_override():
            if not multirun:
                raise ConfigError(f"{o.input_line!r} lists several values; add -m to sweep over them.")
            choices.append([f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()])
        else:
            choices.append([o.input_line])
    members = [list(c) for c in itertools.product(*choices)]
    return members[:max_members]


def check_config(cfg) -> None:
    build_model(**model_kwargs(cfg))
    data = OmegaConf.to_container(cfg.data, resolve=True)
    ArrayDataModule(**data)
    check_available(data["name"], data.get("root"), data.get("download", True))
    check_choice("optim.name", cfg.optim.name, OPTIMIZERS)
    check_choice("optim.schedule", cfg.optim.schedule, SCHEDULES)
    unknown = set(cfg.trainer) - TRAINER_KEYS
    if unknown:
        raise ConfigError(f"unknown trainer option(s) {sorted(unknown)}; valid: {', '.join(sorted(TRAINER_KEYS))}.")
    if cfg.logger.get("wandb"):
        check_choice("logger.wandb.mode", cfg.logger.wandb.mode, WANDB_MODES)
    for key in ("seed",):
        if not isinstance(cfg[key], int):
            raise ConfigError(f"{key} must be an integer, got {cfg[key]!r}.")
    if cfg.stop_after_epoch is not None and (not isinstance(cfg.stop_after_epoch, int) or cfg.stop_after_epoch < 1):
        raise ConfigError(f"stop_after_epoch must be a positive integer or null, got {cfg.stop_after_epoch!r}.")


def preflight(config_name: str, argv: list[str]) -> int:
    """Compose and check every member; return how many there are."""
    members = expand_overrides(argv)
    for overrides in members:
        check_config(compose(config_name, overrides))
    return len(members)
