"""No host-device synchronisation inside the training loop's steps (docs/speed.md).

On CUDA a sync is caught with ``torch.cuda.set_sync_debug_mode("error")`` (tests marked gpu). On a CPU nothing
synchronises, so the mechanism is tested instead: every call that would read a device value on the host
(``Tensor.item``, ``bool(t)``, ``float(t)``, ``tolist``, ``numpy``, printing) is counted by a TorchFunctionMode while
the real Lightning loop trains; the only reads allowed are the divergence guard's scheduled check and the
epoch-end bookkeeping of the last batch.
"""

from __future__ import annotations

import pytorch_lightning as pl

from horesnet.data import ArrayDataModule
from horesnet.training.module import ClassifierModule

from ._sync_helpers import HostReads, WatchSteps


def train(tmp_path, check_every: int, steps: int = 8) -> HostReads:
    data = ArrayDataModule("synthetic", batch_size=8, eval_batch_size=32, val_size=32, limit_train=8 * steps,
                           limit_test=32, synthetic={"train_size": 8 * steps + 32, "test_size": 32, "image_size": 8})
    module = ClassifierModule({"block": "rk4", "depth": 32, "width": 0.25, "num_classes": 10},
                              {"name": "sgd", "lr": 0.05}, divergence={"check_every": check_every})
    mode = HostReads()
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, log_every_n_steps=1000, num_sanity_val_steps=0,
                         limit_val_batches=0, callbacks=[WatchSteps(mode)], default_root_dir=tmp_path)
    trainer.fit(module, datamodule=data)
    assert trainer.global_step == steps
    return mode


def test_training_steps_read_nothing_on_the_host(tmp_path):
    reads = train(tmp_path, check_every=1000).reads
    steps_with_reads = sorted(b for b in reads if b is not None)
    assert steps_with_reads in ([], [7]), reads  # the last batch: the guard's epoch-end check


def test_the_guard_reads_only_when_due(tmp_path):
    """check_every=3: the flag is read after steps 3 and 6 (global step) and at the epoch's last batch."""
    reads = train(tmp_path, check_every=3).reads
    assert sorted(b for b in reads if b is not None) == [2, 5, 7], reads
