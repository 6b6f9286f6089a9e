"""CSV logging always; Weights & Biases through Lightning's WandbLogger, offline automatically when there is no
API key or no network (never a prompt, never a hang)."""

from __future__ import annotations

import netrc
import os
import socket
from pathlib import Path

from pytorch_lightning.loggers import CSVLogger, WandbLogger

from ..errors import check_choice

WANDB_MODES = ("auto", "online", "offline", "disabled")


def _has_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False


def _reachable(host: str = "api.wandb.ai", port: int = 443, timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wandb_mode(requested: str = "auto") -> str:
    """``online`` only with an API key and a reachable server; ``auto`` otherwise falls back to ``offline``."""
    check_choice("logger.wandb.mode", requested, WANDB_MODES)
    if os.environ.get("WANDB_MODE") in ("offline", "disabled", "dryrun") and requested in ("auto", "online"):
        return "offline" if os.environ["WANDB_MODE"] == "dryrun" else os.environ["WANDB_MODE"]
    if requested == "auto":
        return "online" if _has_api_key() and _reachable() else "offline"
    return requested


def make_loggers(cfg: dict, run_dir: Path, run_config: dict, group: str | None) -> list:
    """CSVLogger into ``run_dir`` (``metrics.csv``) and, unless disabled, a WandbLogger."""
    loggers = [CSVLogger(save_dir=str(run_dir), name="", version="")]
    wb = cfg.get("wandb")
    if wb:
        mode = wandb_mode(wb.get("mode", "auto"))
        if mode != "disabled":
            os.environ.setdefault("WANDB_SILENT", "true")
            loggers.append(WandbLogger(
                project=wb.get("project", "horesnet"), entity=wb.get("entity"), name=wb.get("name"),
                group=wb.get("group") or group, tags=list(wb.get("tags") or []), save_dir=str(run_dir),
                offline=(mode == "offline"), config=run_config, job_type=wb.get("job_type", "train"),
                settings={"silent": True, "console": "off"}, reinit="create_new"))
    return loggers
