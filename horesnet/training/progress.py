"""Progress of a training run: one bar for the whole run (``epoch k/N``, the steps of every epoch, so that its
ETA is the run's) with the running training loss, the images per second and the validation accuracy of the last
epoch; one line per epoch in ``fit.log`` (on the console too when the bar is off, ``trainer.enable_progress_bar=
false``, which then also prints a progress line every ``log_every_s`` seconds, for batch-job logs).

No host-device synchronisation per training step: the running loss is an exponential moving average kept on the
device (one small add per step) and read only when the bar refreshes (every ``refresh_s`` seconds); the image
count comes from the batch's shape. The ETA divides the steps left by the mean rate since this start (validation
included), so it does not swing with the last few steps.
"""

from __future__ import annotations

import logging
import math
import sys
import time

import pytorch_lightning as pl

log = logging.getLogger("horesnet.fit")
BETA = 0.98  # the running loss: an EMA over about the last 50 steps


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
        parts = []
        loss = self.running_loss()
        if loss is not None:
            parts.append(f"loss {loss:.4g}")
        rate = self.images_per_sec(now)
        if rate is not None:
            parts.append(f"{rate:.0f} img/s")
        if self.val_acc is not None:
            parts.append(f"val acc {100 * self.val_acc:.2f}%")
        return ", ".join(parts)

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking or not trainer.is_global_zero or trainer.state.fn != "fit":
            return
        acc = trainer.callback_metrics.get("val/acc1")  # computed at the end of validation: one read per epoch
        self.val_acc = None if acc is None else float(acc)

    def on_train_epoch_end(self, trainer, pl_module):
        if not trainer.is_global_zero:
            return
        done, now = trainer.current_epoch + 1, time.perf_counter()
        acc = f"val acc {100 * self.val_acc:.2f}%" if self.val_acc is not None else "val acc n/a"
        if self.bar is not None:
            self.bar.update(self._pending)
            self._pending = 0
            self.bar.set_postfix_str(self._postfix(now) or acc)
        loss = self.running_loss()
        log.info(f"epoch {done}/{trainer.max_epochs}: {acc}" + (f", loss {loss:.4g}" if loss is not None else "")
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
