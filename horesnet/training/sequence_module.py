"""Training on sequence datasets (docs/transformers.md): the LightningModule and data module a run uses, chosen by
the data's task (``horesnet/data/sequences.py``).

:class:`SequenceModule` flattens the logits ``(B, T, V)`` of language modelling to ``(B * T, V)`` against the next
tokens, so the loss is the next-token cross-entropy (nats) and ``acc1``/``acc5``/``ece`` are next-character accuracy
and calibration; it also logs bits per character, ``<split>/bpc`` = loss / ln 2 (the best checkpoint has the lowest
``val/bpc``). ``images_per_sec`` counts predicted tokens (language modelling) or sequences.
"""

from __future__ import annotations

import math

from torchmetrics import MeanMetric

from ..data.sequences import resolve_model, task_of
from .module import ClassifierModule


class SequenceModule(ClassifierModule):
    """``ClassifierModule`` for ``arch=transformer`` on a sequence dataset (``data`` is required)."""

    def __init__(self, model: dict, optim: dict, channels_last: bool = False, data: dict | None = None,
                 divergence: dict | None = None, compile: str | None = None, grad_checkpointing: bool = False,
                 grad_checkpointing_stages: list[int] | None = None):
        model = resolve_model(model, data or {})  # the checkpoint's hparams hold the resolved options
        super().__init__(model, optim, False, data, divergence, compile, grad_checkpointing,
                         grad_checkpointing_stages)
        self.lm = task_of(data or {}) == "lm"
        self.val_bpc, self.test_bpc = MeanMetric(), MeanMetric()

    def forward(self, x):
        out = self.model(x)
        return out.flatten(0, 1) if out.dim() == 3 else out

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        if self.lm:
            self.log("train/bpc", loss.detach() / math.log(2), on_step=True, on_epoch=True, batch_size=len(batch[1]))
        return loss

    def on_train_epoch_end(self):
        super().on_train_epoch_end()
        for address, block, _ in self.model.blocks():  # each learnable step h, by block address
            if getattr(block, "learn_step", False):
                self.log(f"train/step/{address}", block.step.detach())

    def _eval_step(self, batch, metrics, loss_metric, prefix):
        loss = super()._eval_step(batch, metrics, loss_metric, prefix)
        if self.lm:
            bpc = self.val_bpc if prefix == "val" else self.test_bpc
            bpc.update(loss / math.log(2), weight=len(batch[1]))
            self.log(f"{prefix}/bpc", bpc, on_step=False, on_epoch=True, batch_size=len(batch[1]))


def is_sequence_run(data: dict) -> bool:
    return task_of(data) != "image"


def make_data_module(data: dict, seed: int):
    """The data module of ``data``: sequences or images."""
    if is_sequence_run(data):
        from ..data.sequence_module import SequenceDataModule

        return SequenceDataModule(**data, seed=seed)
    from ..data import ArrayDataModule

    return ArrayDataModule(**data, seed=seed)


def make_module(model: dict, optim: dict, channels_last: bool, data: dict, *args, **kwargs):
    """The LightningModule of a run: :class:`SequenceModule` on sequence data, else ``ClassifierModule``."""
    cls = SequenceModule if is_sequence_run(data) else ClassifierModule
    return cls(model, optim, channels_last, data, *args, **kwargs)


def monitor(data: dict) -> tuple[str, str]:
    """The metric and mode that choose the best checkpoint: lowest ``val/bpc`` for language modelling."""
    return ("val/bpc", "min") if task_of(data) == "lm" else ("val/acc1", "max")
