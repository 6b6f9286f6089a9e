"""Counting host reads of tensor values per training batch (tests/test_sync_free.py and the speed-path tests)."""

from __future__ import annotations

import pytorch_lightning as pl
from torch.overrides import TorchFunctionMode

HOST_READS = {"item", "__bool__", "__float__", "__int__", "__index__", "tolist", "numpy", "__repr__", "__format__"}


class HostReads(TorchFunctionMode):
    """Counts host reads of tensor values, by the training batch during which they happen."""

    def __init__(self):
        super().__init__()
        self.batch = None
        self.reads: dict[int | None, list[str]] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in HOST_READS:
            self.reads.setdefault(self.batch, []).append(name)
        return func(*args, **(kwargs or {}))


class WatchSteps(pl.Callback):
    def __init__(self, mode: HostReads):
        self.mode = mode

    def on_train_epoch_start(self, trainer, module):
        self.mode.__enter__()

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self.mode.batch = batch_idx

    def on_train_epoch_end(self, trainer, module):
        self.mode.batch = None
        self.mode.__exit__(None, None, None)
