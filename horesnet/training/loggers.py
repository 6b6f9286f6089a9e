"""CSV logging always; Weights & Biases through Lightning's WandbLogger, offline automatically when there is no
API key or no reachable server (never a prompt, never a hang: every network wait is bounded by
``logger.wandb.timeout`` seconds, after which the run continues offline with a printed notice). Analyses and
comparisons log their tables by a W&B run of their own (``log_run``, ``table``)."""

from __future__ import annotations

import netrc
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from pytorch_lightning.loggers import CSVLogger, WandbLogger

from ..errors import ConfigError, check_choice
from .wandb_links import experiment_group, write_offline_files

WANDB_MODES = ("auto", "online", "offline", "disabled")
ENV_MODES = ("online", "offline", "disabled", "dryrun", "run", "shared")  # what wandb accepts as WANDB_MODE
DEFAULT_TIMEOUT_S = 10.0


def _base_url() -> str:
    return os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai"


def _has_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        host = urlparse(_base_url()).hostname or "api.wandb.ai"
        return netrc.netrc().authenticators(host) is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def _reachable(url: str | None = None, timeout: float = DEFAULT_TIMEOUT_S) -> bool:
    """Whether the W&B server answers an HTTP request (any status) within ``timeout`` seconds."""
    try:
        with urllib.request.urlopen(url or _base_url(), timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True  # it answered
    except (OSError, ValueError):
        return False


def notice(text: str) -> None:
    print(f"horesnet: W&B: {text}", file=sys.stderr, flush=True)


def wandb_mode(requested: str = "auto", timeout: float = DEFAULT_TIMEOUT_S) -> str:
    """``online`` only with an API key and a server that answers within ``timeout``; otherwise ``offline``
    (with a notice when online was asked for). ``WANDB_MODE`` in the environment counts as a request."""
    check_choice("logger.wandb.mode", requested, WANDB_MODES)
    check_wandb_env()
    env = os.environ.get("WANDB_MODE")
    if env in ("offline", "disabled", "dryrun") and requested in ("auto", "online"):
        return "offline" if env == "dryrun" else env
    if requested == "auto" and env == "online":
        requested = "online"
    if requested not in ("auto", "online"):
        return requested
    say = (lambda text: None) if requested == "auto" else notice
    if not _has_api_key():
        say("online logging was asked for but there is no API key (WANDB_API_KEY or ~/.netrc); logging offline "
            "instead (upload later with `wandb sync`).")
        return "offline"
    if not _reachable(timeout=timeout):
        say(f"{_base_url()} did not answer within {timeout:g} s (logger.wandb.timeout); logging offline instead "
            "(upload later with `wandb sync`).")
        return "offline"
    return "online"


def check_wandb_env() -> None:
    """Refuse a ``WANDB_MODE`` in the environment that wandb would reject mid-run (checked before any output)."""
    env = os.environ.get("WANDB_MODE")
    if env is not None and env not in ENV_MODES:
        raise ConfigError(f"the environment variable WANDB_MODE={env!r} is not a W&B mode; valid: "
                          f"{', '.join(repr(m) for m in ENV_MODES)} (or unset it and use logger.wandb.mode=...).")


def wandb_settings(timeout: float) -> dict:
    return {"silent": True, "console": "off", "init_timeout": float(timeout)}


def init_run(timeout: float = DEFAULT_TIMEOUT_S, **kwargs):
    """``wandb.init(**kwargs)`` that falls back to an offline run if an online start fails or times out."""
    import wandb

    settings = {**wandb_settings(timeout), **kwargs.pop("settings", {})}
    try:
        return wandb.init(settings=settings, **kwargs)
    except Exception as err:  # noqa: BLE001 -- wandb raises its own CommError/UsageError/timeouts
        if kwargs.get("mode") != "online":
            raise
        notice(f"starting an online run failed ({type(err).__name__}); logging offline instead.")
        return wandb.init(settings=settings, **{**kwargs, "mode": "offline"})


def table(records: list[dict], columns: list | None = None, value=lambda v: v):
    """A ``wandb.Table`` of flat records: ``columns`` (default: every key, in the order first seen), each cell
    ``value(record[column])`` (None where a record has no such key)."""
    import wandb

    columns = columns or list(dict.fromkeys(k for r in records for k in r))
    return wandb.Table(columns=columns, data=[[value(r.get(c)) for c in columns] for r in records])


def log_run(steps: list[dict], **init) -> None:
    """A W&B run of its own (``init_run(**init)``: an analysis, a comparison) that logs each of ``steps``,
    writes an offline run's files and finishes."""
    run = init_run(**init)
    for step in steps:
        run.log(step)
    write_offline_files(run)
    run.finish()


class OnceConfigWandbLogger(WandbLogger):
    """A WandbLogger whose run config is the one given when the run starts (nested, ``wandb_links.nested_config``):
    Lightning's dump of the LightningModule's hyperparameters would store the same options a second time."""

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        return None


def make_loggers(cfg: dict, run_dir: Path, run_config: dict, group: str | None) -> list:
    """CSVLogger into ``run_dir`` (``metrics.csv``) and, unless disabled, a WandbLogger in the experiment's group
    (``wandb_links.experiment_group``: ``logger.wandb.group``, else ``group`` -- the sweep --, else the run)."""
    loggers = [CSVLogger(save_dir=str(run_dir), name="", version="")]
    wb = cfg.get("wandb")
    if wb:
        timeout = float(wb.get("timeout", DEFAULT_TIMEOUT_S))
        mode = wandb_mode(wb.get("mode", "auto"), timeout)
        if mode != "disabled":
            os.environ.setdefault("WANDB_SILENT", "true")

            def logger(offline: bool, **forced) -> WandbLogger:
                return OnceConfigWandbLogger(**forced,
                    project=wb.get("project", "horesnet"), entity=wb.get("entity"), name=wb.get("name"),
                    group=experiment_group(wb, group, run_dir), tags=list(wb.get("tags") or []), save_dir=str(run_dir),
                    offline=offline, config=run_config, job_type=wb.get("job_type", "train"),
                    settings=wandb_settings(timeout), reinit="create_new")

            wandb_logger = logger(mode == "offline")
            if mode == "online":
                try:
                    wandb_logger.experiment  # noqa: B018 -- start the run now, inside the time bound
                except Exception as err:  # noqa: BLE001
                    notice(f"starting an online run failed ({type(err).__name__}: {str(err)[:200]}); "
                           "logging offline instead (upload later with `wandb sync`).")
                    wandb_logger = logger(True, mode="offline")  # wandb keeps the failed start's online mode
                    wandb_logger.experiment  # noqa: B018 -- an offline start needs no server
            loggers.append(wandb_logger)
    return loggers
