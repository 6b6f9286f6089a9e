"""The LightningModule that trains any horesnet model (docs/design.md, "Training")."""

from __future__ import annotations

import logging
import math
import time

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassCalibrationError

from ..errors import ConfigError
from ..models import build_model, compile_model
from . import midepoch
from .divergence import DivergedError, DivergenceGuard
from .optim import build_optimizer

log = logging.getLogger("horesnet.fit")


def coefficient_metrics(model) -> dict[str, float]:
    """``train/coef/<block>.<name>`` -> value of every learned multistep coefficient (momentum's gamma, lm's k;
    docs/multistep.md, "Training"); one per channel or a learned history (average's weights) gives ``..._mean``,
    ``..._min`` and ``..._max``. Empty for a network without learned coefficients. Read once per epoch."""
    learned = getattr(model, "learned_coefficients", None)
    out = {}
    for address, values in (learned() if learned is not None else {}).items():
        for name, value in values.items():
            key = f"train/coef/{address}.{name}"
            if isinstance(value, list):
                if value:
                    out.update({f"{key}_mean": sum(value) / len(value), f"{key}_min": min(value),
                                f"{key}_max": max(value)})
            else:
                out[key] = float(value)
    return out


def _metrics(num_classes: int) -> MetricCollection:
    return MetricCollection({
        "acc1": MulticlassAccuracy(num_classes, top_k=1, average="micro", validate_args=False),
        "acc5": MulticlassAccuracy(num_classes, top_k=min(5, num_classes), average="micro", validate_args=False),
        "ece": MulticlassCalibrationError(num_classes, n_bins=15, norm="l1", validate_args=False),
    })


class ClassifierModule(pl.LightningModule):
    """Cross-entropy training of ``build_model(**model)`` with top-1/top-5 accuracy, loss and calibration (ECE).

    ``model`` is the dict of build_model options (saved in checkpoints as plain containers, so a checkpoint loads
    with ``torch.load(weights_only=True)`` and rebuilds the exact network); ``optim`` the optimiser config group;
    ``data`` the data config, kept so that analysis tools can find the checkpoint's dataset; ``divergence`` the
    thresholds of the divergence guard (``training/divergence.py``).
    """

    def __init__(self, model: dict, optim: dict, channels_last: bool = False, data: dict | None = None,
                 divergence: dict | None = None, compile: str | None = None, grad_checkpointing: bool = False,
                 grad_checkpointing_stages: list[int] | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.guard = DivergenceGuard(**(divergence or {}))
        self.model = build_model(**model)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.channels_last = channels_last
        if grad_checkpointing:
            self.model.set_grad_checkpointing(True, stages=grad_checkpointing_stages)
        if compile:  # the compile mode; in place, so checkpoints keep the plain network's keys
            compile_model(self.model, compile)
        num_classes = model.get("num_classes", 10)
        # validate_args=False: torchmetrics' input checks read values on the host (a sync on every update)
        self.train_acc = MulticlassAccuracy(num_classes, top_k=1, average="micro", validate_args=False)
        self.val_metrics = _metrics(num_classes).clone(prefix="val/")
        self.test_metrics = _metrics(num_classes).clone(prefix="test/")
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        self._epoch_start = self._mark = None
        self._epoch_images = 0
        self.images_per_sec = float("nan")
        self.train_time_s = 0.0  # training-batch time summed over all epochs, kept across resumes
        self.wall_time_before_s = 0.0  # wall time of the earlier slices of a resumed run (up to their checkpoint)
        self._session_start = time.time()
        self._resumed: dict | None = None  # checkpoint["horesnet"] of a resume, until training has restarted

    def forward(self, x):
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        self.guard.observe(loss)  # no host-device sync: the flag is read every divergence.check_every steps
        self.train_acc.update(logits.detach(), y)  # on the device; computed once per epoch
        now = time.perf_counter()
        self.train_time_s += now - self._mark
        self._mark = now
        self._epoch_images += len(y)
        self.images_per_sec = self._epoch_images / max(now - self._epoch_start, 1e-9)
        # Lightning turns every progress-bar value into a Python number after each batch (a host-device sync), so
        # nothing is logged to the bar per step; loggers read the step values only every log_every_n_steps.
        self.log("train/loss", loss, on_step=True, on_epoch=True, batch_size=len(y))
        self.log("train/acc1", self.train_acc, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def on_train_batch_start(self, batch, batch_idx):
        if self._resumed is not None and self._resumed.get("position", {}).get("mid_epoch"):
            midepoch.restore_rng(self, self._resumed)  # here: after the loader has started (it draws from it)
            midepoch.restore_metrics(self, self._resumed)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if self._resumed is not None:  # the first batch after a resume has been logged: merge the epoch's sums
            state, self._resumed = self._resumed, None
            missing = midepoch.merge_results(self, state)
            if missing:
                log.info(f"resumed mid-epoch: running training metrics {missing} not found; the epoch means of "
                         "this epoch cover only the batches after the resume", extra={"file_only": True})
        last = batch_idx + 1 >= self.trainer.num_training_batches
        if self.guard.due(self.global_step, last):
            self.check_divergence()

    def check_divergence(self) -> None:
        """Read the divergence flag and scan the weights (one host read); raise DivergedError in every process."""
        found = self.guard.problem(self.model)
        # every process stops together (a DDP rank that stopped alone would leave the others waiting)
        if self.trainer.strategy.reduce_boolean_decision(found is not None, all=False):
            lr = self.trainer.optimizers[0].param_groups[0]["lr"]
            raise DivergedError(
                f"the run diverged at epoch {self.current_epoch + 1}, step {self.global_step}: "
                f"{found or 'in another process'} "
                f"(block={self.hparams.model.get('block')}, optim.lr={self.hparams.optim.get('lr')}, "
                f"lr now {lr:g}). Training stopped; no checkpoint of the diverged network was written (an "
                "earlier last.ckpt, if any, is intact and finite). Try a smaller optim.lr, a warm-up "
                "(optim.warmup_steps), or a smaller step h.")

    def on_train_start(self):
        if self._mark is None:  # resumed mid-epoch: Lightning does not start the epoch again
            self._epoch_start = self._mark = time.perf_counter()
        position = (self._resumed or {}).get("position") or {}
        if position.get("mid_epoch"):
            # the loader skips the batches already trained (Lightning would restore its state only if it had not
            # built the loader before restoring, which estimated_stepping_batches in configure_optimizers does)
            midepoch.resume_loader(self.trainer.train_dataloader, position)
        elif self._resumed is not None:
            midepoch.restore_rng(self, self._resumed)
            self._resumed = None

    def on_train_epoch_start(self):
        self._epoch_start = self._mark = time.perf_counter()
        self._epoch_images = 0

    @property
    def wall_time_s(self) -> float:
        """Wall time of the whole run: earlier slices (up to their last checkpoint) plus this one."""
        return self.wall_time_before_s + (time.time() - self._session_start)

    def on_save_checkpoint(self, checkpoint):
        checkpoint["horesnet"] = {"train_time_s": self.train_time_s, "images_per_sec": self.images_per_sec,
                                  "wall_time_s": self.wall_time_s, **midepoch.capture(self)}

    def on_load_checkpoint(self, checkpoint):
        state = checkpoint.get("horesnet", {})
        self._resumed = state  # the RNG and, mid-epoch, the running metrics: restored when training starts
        self.train_time_s = float(state.get("train_time_s", 0.0))
        self.images_per_sec = float(state.get("images_per_sec", float("nan")))
        self.wall_time_before_s = float(state.get("wall_time_s", 0.0))

    def on_train_epoch_end(self):
        self.log("train/images_per_sec", self.images_per_sec, sync_dist=True)
        steps = self.model.learnable_steps
        if steps:
            self.log("train/step_mean", torch.stack([s.detach() for s in steps]).mean())
        for key, value in coefficient_metrics(self.model).items():  # learned multistep coefficients (gamma, k)
            self.log(key, value)

    def _eval_step(self, batch, metrics, loss_metric, prefix):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        loss_metric.update(loss, weight=len(y))
        metrics.update(logits, y)
        self.log(f"{prefix}/loss", loss_metric, on_step=False, on_epoch=True, batch_size=len(y))
        self.log_dict(metrics, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, self.val_metrics, self.val_loss, "val")

    def on_validation_epoch_end(self):
        """A non-finite validation loss is a diverged run, not a finished one (one read per epoch; the metric is
        synchronised across processes, so every process stops together)."""
        if self.trainer.sanity_checking or self.trainer.state.fn != "fit":  # not trainer.validate()
            return
        loss = float(self.val_loss.compute())
        if not math.isfinite(loss):
            raise DivergedError(
                f"the run diverged at epoch {self.current_epoch + 1}, step {self.global_step}: the validation loss "
                f"is {loss} (the network computes NaN or inf in evaluation, e.g. from a BatchNorm running_var)")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, self.test_metrics, self.test_loss, "test")

    def configure_optimizers(self):
        total = self.trainer.estimated_stepping_batches
        if not math.isfinite(total):
            raise ConfigError("set trainer.max_epochs (or max_steps): the lr schedule needs the length of training.")
        return build_optimizer(self.model, dict(self.hparams.optim), int(total))
