"""The console of ``python -m horesnet.fit``: a start banner, horesnet's own lines, and nothing else.

Hydra's job logging (``configs/hydra/job_logging/horesnet.yaml``) sends every record to the run's ``fit.log``; the
console shows only horesnet's records, Hydra's sweep lines and errors (:class:`ConsoleFilter`). Lightning's
information lines and third-party Python warnings (deprecations, adverts, "log directory exists") thus go to
``fit.log`` only, while a warning raised by horesnet itself or by a user's plugin stays on the console.
"""

from __future__ import annotations

import logging
import sys
import sysconfig
import warnings
from pathlib import Path

log = logging.getLogger("horesnet.fit")
THIRD_PARTY = "horesnet_thirdparty"  # the logger of third-party warnings: fit.log only (not a horesnet.* name)
LIGHTNING_LOGGERS = ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning")
_PACKAGE = Path(__file__).resolve().parent.parent
_LIBRARIES = tuple({Path(p).resolve() for p in (sysconfig.get_paths()[k] for k in ("stdlib", "purelib", "platlib"))})


class ConsoleFilter(logging.Filter):
    """Pass horesnet's and Hydra's records (unless marked ``file_only``) and every error; the rest is fit.log's."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "file_only", False):
            return False
        return record.name.split(".")[0] in ("horesnet", "hydra", "__main__") or record.levelno >= logging.ERROR


def third_party(filename: str) -> bool:
    """Whether a warning raised in ``filename`` comes from an installed library (not horesnet, not user code)."""
    path = Path(filename).resolve()
    if path.is_relative_to(_PACKAGE):
        return False
    return any(path.is_relative_to(lib) for lib in _LIBRARIES) or not path.exists()


def _show(message, category, filename, lineno, file=None, line=None) -> None:
    if third_party(filename):
        text = warnings.formatwarning(message, category, filename, lineno, line).strip()
        logging.getLogger(THIRD_PARTY).warning(text)
    else:
        print(f"horesnet: {category.__name__}: {message}", file=sys.stderr, flush=True)


def install() -> None:
    """Route Python warnings (third-party ones to fit.log only) and Lightning's log records through the root
    logger. Called once at start-up (before anything is logged) and again by every run (Hydra reconfigures the
    handlers of each job)."""
    warnings.showwarning = _show
    quiet = logging.getLogger(THIRD_PARTY)
    if not quiet.handlers:
        quiet.addHandler(logging.NullHandler())  # before Hydra's handlers exist: dropped, never on stderr
    for name in LIGHTNING_LOGGERS:
        lg = logging.getLogger(name)
        for handler in list(lg.handlers):
            if type(handler) is logging.StreamHandler:
                lg.removeHandler(handler)  # Lightning's own console handler, added when it was imported
        lg.propagate = True


def quiet_wandb(wandb_logger) -> None:
    """Lightning passes ``anonymous=None`` to ``wandb.init``, which W&B answers with a deprecation line on the
    console; the setting has no effect, so it is not passed."""
    init = getattr(wandb_logger, "_wandb_init", None)
    if isinstance(init, dict) and init.get("anonymous") is None:
        init.pop("anonymous", None)


def banner(cfg: dict, facts: dict, run_dir: Path, device: str) -> str:
    """What is about to be trained and where its outputs go (printed before training, kept in fit.log)."""
    from ..models.config import model_defaults

    defaults = model_defaults()
    changed = [f"{k}={cfg[k]}" for k in defaults if k not in ("block", "depth", "in_channels", "num_classes")
               and k in cfg and cfg[k] != defaults[k]]
    data, trainer, optim = cfg["data"], cfg["trainer"], cfg["optim"]
    scale = facts.get("residual_scale")
    limits = ", ".join(f"{k.removeprefix('limit_')} {v}" for k, v in data.items() if k.startswith("limit_") and v)
    layout = "; ".join(line.strip() for line in facts.get("layout", []) if line.strip().startswith("stage"))
    lines = [
        f"horesnet.fit: training {cfg['block']}-{cfg['depth']}" + (f" ({', '.join(changed)})" if changed else ""),
        f"  layout      {layout or facts.get('units_per_stage')}",
        f"  parameters  {facts['params']:,}" + (f", multiply-adds/image {facts['macs'] / 1e6:.1f}M"
                                                if facts.get("macs") else ""),
        "  residual    " + (f"scale {scale['mean']:.4g}" if scale else "n/a (continuous ODE blocks)"),
        f"  data        {data['name']}" + (f" ({limits})" if limits else "") + f", batch {data.get('batch_size')}",
        f"  recipe      {trainer.get('max_epochs')} epoch(s), {optim.get('name')} {optim.get('schedule')} "
        f"lr {optim.get('lr')}, seed {cfg.get('seed')}",
        f"  device      {device}, precision {trainer.get('precision')}"
        + (", channels_last" if cfg.get("channels_last") else ""),
        f"  outputs     {run_dir}  (console log: fit.log)",
    ]
    return "\n".join(lines)
