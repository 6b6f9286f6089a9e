"""The console of ``python -m horesnet.fit``: a start banner, horesnet's own lines, and nothing else.

Hydra's job logging (``configs/hydra/job_logging/horesnet.yaml``) sends every record to the run's ``fit.log``; the
console shows only horesnet's records, Hydra's sweep lines and errors (:class:`ConsoleFilter`). Lightning's
information lines and third-party Python warnings (deprecations, adverts, "log directory exists") thus go to
``fit.log`` only, while a warning raised by horesnet itself or by a user's plugin stays on the console.

Progress (:class:`RunProgress`, docs/training.md): one bar for the whole run, whose ETA is the run's; one line per
epoch in ``fit.log`` (on the console too when the bar is off, ``trainer.enable_progress_bar=false``, which then also
prints a progress line every ``log_every_s`` seconds). No host-device synchronisation per training step: the running
loss is an exponential moving average kept on the device, read only when the bar refreshes.
"""

from __future__ import annotations

import logging
import math
import sys
import sysconfig
import time
import warnings
from pathlib import Path

import pytorch_lightning as pl

log = logging.getLogger("horesnet.fit")
THIRD_PARTY = "horesnet_thirdparty"  # the logger of third-party warnings: fit.log only (not a horesnet.* name)
LIGHTNING_LOGGERS = ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning")
_PACKAGE = Path(__file__).resolve().parent.parent
_LIBRARIES = tuple({Path(p).resolve() for p in (sysconfig.get_paths()[k] for k in ("stdlib", "purelib", "platlib"))})
BETA = 0.98  # the running loss: an EMA over about the last 50 steps


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


def duration(seconds: float) -> str:
    """``1h02m``, ``3m05s``, ``12s``."""
    if not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class RunProgress(pl.Callback):
    """``show_bar``: draw the tqdm bar on stderr (the per-epoch lines then go to fit.log only)."""

    def __init__(self, show_bar: bool = True, refresh_s: float = 1.0, log_every_s: float = 300.0):
        self.show_bar, self.refresh_s, self.log_every_s = show_bar, float(refresh_s), float(log_every_s)
        self.bar = None
        self.val_acc: float | None = None
        self._start = self._last_refresh = self._last_line = self._epoch_t0 = 0.0
        self._n = self._initial = self._pending = self._epoch_images = self._ema_steps = 0
        self._total: int | None = None
        self._ema = None  # device tensor

    # -- bookkeeping ------------------------------------------------------------------------------------------
    def on_train_start(self, trainer, pl_module):
        now = time.perf_counter()
        self._start = self._last_refresh = self._last_line = self._epoch_t0 = now
        per_epoch = trainer.num_training_batches
        finite = math.isfinite(per_epoch) and trainer.max_epochs is not None and trainer.max_epochs > 0
        self._total = int(per_epoch) * trainer.max_epochs if finite else None
        self._n = self._initial = trainer.global_step * trainer.accumulate_grad_batches  # batches already trained
        if not self.show_bar or not trainer.is_global_zero:
            return
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self._total, initial=self._initial, file=sys.stderr, dynamic_ncols=True, unit="step",
                        leave=True, smoothing=0,  # the rate since this start: a steady ETA
                        bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} steps "
                                   "[{elapsed}<{remaining}{postfix}]")
        self.bar.set_description_str(self._epoch_text(trainer))

    def _epoch_text(self, trainer) -> str:
        return f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"

    def on_train_epoch_start(self, trainer, pl_module):
        self._epoch_t0, self._epoch_images = time.perf_counter(), 0
        if self.bar is not None:
            self.bar.set_description_str(self._epoch_text(trainer))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._n += 1
        self._pending += 1
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None:  # on the device: no sync
            loss = loss.detach().float()
            self._ema = (1 - BETA) * loss if self._ema is None else BETA * self._ema + (1 - BETA) * loss
            self._ema_steps += 1
        if isinstance(batch, list | tuple) and len(batch) > 1 and hasattr(batch[1], "shape"):
            self._epoch_images += int(batch[1].shape[0])
        now = time.perf_counter()
        if self.bar is not None and now - self._last_refresh >= self.refresh_s:
            self._last_refresh = now
            self.bar.update(self._pending)
            self._pending = 0
            self.bar.set_postfix_str(self._postfix(now), refresh=True)
        elif self.bar is None and trainer.is_global_zero and now - self._last_line >= self.log_every_s:
            self._last_line = now
            log.info(f"{self._epoch_text(trainer)}: step {self._n}/{self._total or '?'}, {self._postfix(now)}, "
                     f"ETA {duration(self.eta(now))}")

    # -- what is shown ----------------------------------------------------------------------------------------
    def running_loss(self) -> float | None:
        """The running training loss (bias-corrected EMA); reading it is one host-device sync."""
        if self._ema is None:
            return None
        return float(self._ema) / (1 - BETA ** self._ema_steps)

    def images_per_sec(self, now: float) -> float | None:
        """Training images per second in this epoch so far (validation excluded)."""
        elapsed = now - self._epoch_t0
        return self._epoch_images / elapsed if self._epoch_images and elapsed > 0 else None

    def eta(self, now: float) -> float:
        """Seconds left: the steps left at the mean rate of this start (validation time included)."""
        done = self._n - self._initial
        if self._total is None or done <= 0:
            return float("nan")
        return (now - self._start) / done * max(self._total - self._n, 0)

    def _postfix(self, now: float) -> str:
        shown = ((self.running_loss(), "loss {:.4g}"), (self.images_per_sec(now), "{:.0f} img/s"),
                 (None if self.val_acc is None else 100 * self.val_acc, "val acc {:.2f}%"))
        return ", ".join(text.format(value) for value, text in shown if value is not None)

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking or not trainer.is_global_zero or trainer.state.fn != "fit":
            return
        acc = trainer.callback_metrics.get("val/acc1")  # computed at the end of validation: one read per epoch
        self.val_acc = None if acc is None else float(acc)

    def on_train_epoch_end(self, trainer, pl_module):
        if not trainer.is_global_zero:
            return
        now = time.perf_counter()
        acc = f"val acc {100 * self.val_acc:.2f}%" if self.val_acc is not None else "val acc n/a"
        if self.bar is not None:
            self.bar.update(self._pending)
            self._pending = 0
            self.bar.set_postfix_str(self._postfix(now) or acc)
        loss = self.running_loss()
        log.info(f"{self._epoch_text(trainer)}: {acc}" + (f", loss {loss:.4g}" if loss is not None else "")
                 + f", {duration(now - self._epoch_t0)}/epoch, ETA {duration(self.eta(now))}",
                 extra={"file_only": self.bar is not None})

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.update(self._pending)
            self._pending = 0
            self.bar.close()
            self.bar = None

    def on_train_end(self, trainer, pl_module):
        self._close()

    def on_exception(self, trainer, pl_module, exception):
        self._close()  # the interruption or error message then starts on a line of its own
