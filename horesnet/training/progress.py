"""Progress of a training run: one bar for the whole run (``epoch k/N``, the steps of every epoch, so that its
ETA is the run's), the validation accuracy of the last epoch, and one line per epoch in ``fit.log`` (on the console
too when the bar is off, ``trainer.enable_progress_bar=false``).

It reads only what Lightning has already computed at the end of an epoch (the validation metrics): no
host-device synchronisation per training step.
"""

from __future__ import annotations

import logging
import math
import sys
import time

import pytorch_lightning as pl

log = logging.getLogger("horesnet.fit")


def duration(seconds: float) -> str:
    """``1h02m``, ``3m05s``, ``12s``."""
    if not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class RunProgress(pl.Callback):
    """``show_bar``: draw the tqdm bar on stderr (the per-epoch lines then go to fit.log only)."""

    def __init__(self, show_bar: bool = True, refresh_rate: int = 10):
        self.show_bar = show_bar
        self.refresh_rate = max(1, int(refresh_rate))
        self.bar = None
        self._pending = 0
        self._start = self._first_epoch = None
        self.val_acc: float | None = None

    def on_train_start(self, trainer, pl_module):
        self._start, self._first_epoch = time.perf_counter(), trainer.current_epoch
        if not self.show_bar or not trainer.is_global_zero:
            return
        from tqdm.auto import tqdm

        per_epoch = trainer.num_training_batches
        finite = math.isfinite(per_epoch) and trainer.max_epochs is not None and trainer.max_epochs > 0
        total = int(per_epoch) * trainer.max_epochs if finite else None
        self.bar = tqdm(total=total, initial=int(per_epoch) * trainer.current_epoch if finite else 0,
                        file=sys.stderr, dynamic_ncols=True, unit="step", leave=True,
                        bar_format="{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} steps "
                                   "[{elapsed}<{remaining}{postfix}]")
        self.bar.set_description_str(self._epoch_text(trainer))

    def _epoch_text(self, trainer) -> str:
        return f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"

    def on_train_epoch_start(self, trainer, pl_module):
        if self.bar is not None:
            self.bar.set_description_str(self._epoch_text(trainer))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.bar is None:
            return
        self._pending += 1
        if self._pending >= self.refresh_rate:
            self.bar.update(self._pending)
            self._pending = 0

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking or not trainer.is_global_zero or trainer.state.fn != "fit":
            return
        acc = trainer.callback_metrics.get("val/acc1")  # computed at the end of validation: one read per epoch
        self.val_acc = None if acc is None else float(acc)

    def on_train_epoch_end(self, trainer, pl_module):
        if not trainer.is_global_zero:
            return
        done = trainer.current_epoch + 1
        elapsed = time.perf_counter() - self._start
        per_epoch = elapsed / max(done - self._first_epoch, 1)
        left = per_epoch * max(trainer.max_epochs - done, 0)
        acc = f"val acc {100 * self.val_acc:.2f}%" if self.val_acc is not None else "val acc n/a"
        if self.bar is not None:
            self.bar.update(self._pending)
            self._pending = 0
            self.bar.set_postfix_str(acc)
        log.info(f"epoch {done}/{trainer.max_epochs}: {acc}, {duration(per_epoch)}/epoch, ETA {duration(left)}",
                 extra={"file_only": self.bar is not None})

    def on_train_end(self, trainer, pl_module):
        if self.bar is not None:
            self.bar.update(self._pending)
            self.bar.close()
            self.bar = None
