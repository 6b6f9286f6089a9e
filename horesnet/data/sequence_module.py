"""The data module of sequence datasets (``horesnet/data/sequences.py``): the image module (``module.py``) with
sequences instead of images: whole splits held as tensors, batched by index, in the order of (seed, epoch) and
resumable mid-epoch.

Language modelling: each split's token stream is cut into non-overlapping windows of ``seq_len + 1`` tokens;
a batch is ``(x, y)`` with ``x`` the first ``seq_len`` tokens of each window ``(B, T)`` and ``y`` the next token
at every position, flattened ``(B * T,)`` (what the classifier's loss and metrics take). Sequence
classification: ``x`` float ``(B, T, F)`` normalised by the training set's mean and standard deviation, ``y``
``(B,)``. ``data.limit_*`` count sequences.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError
from .module import ArrayDataModule, as_tensor, check_available
from .registry import get_dataset
from .sequences import seq_len_of, task_of
from .sources import DataError, data_root


def windows(tokens: np.ndarray, seq_len: int) -> torch.Tensor:
    """Non-overlapping windows of ``seq_len + 1`` tokens (consecutive windows share one token)."""
    n = (len(tokens) - 1) // seq_len
    if n < 1:
        raise ConfigError(f"a split of {len(tokens)} tokens holds no sequence of {seq_len} + 1 tokens.")
    starts = np.arange(n)[:, None] * seq_len + np.arange(seq_len + 1)[None, :]
    return torch.from_numpy(np.ascontiguousarray(tokens[starts]))


class SequenceDataModule(ArrayDataModule):
    """Train/validation/test sequences of a registered sequence dataset (the data config's keys, as
    ``ArrayDataModule`` takes them; image-only keys such as ``augment`` are ignored)."""

    drop_lone = False  # no BatchNorm in a transformer: every remainder is trained

    def __init__(self, name: str, root=None, download: bool = True, verify: bool = True, batch_size: int = 32,
                 eval_batch_size: int = 256, val_size: int = 0, split_seed: int = 0, limit_train=None,
                 limit_val=None, limit_test=None, seed: int = 0, channels=None, num_classes=None, num_workers: int = 0,
                 augment=None, crop_padding=None, flip=None, **options):
        super().__init__(name, root, download, verify, batch_size, eval_batch_size, val_size, split_seed,
                         limit_train, limit_val, limit_test, augment=False, seed=seed, num_classes=num_classes,
                         num_workers=num_workers, **options)
        self.task = task_of({"name": name})
        self.seq_len = seq_len_of({"name": name, **options})
        self.mean, self.std = 0.0, 1.0

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        if not self.download:
            check_available(self.name, self.root, download=False)
        train, val, test, _ = get_dataset(self.name).load(data_root(self.root), self.download, self.verify,
                                                           self.options)
        num_classes = self.expected[1]
        if self.task == "lm":
            parts = {split: windows(tokens, self.seq_len) for split, tokens in
                     (("train", train), ("val", val), ("test", test))}
            parts = {split: (w, torch.zeros(len(w), dtype=torch.int64)) for split, w in parts.items()}
            top = max(int(w.max()) for w, _ in parts.values())
            if num_classes is not None and top >= num_classes:
                raise DataError(f"data.num_classes={num_classes} but {self.name} has token ids up to {top}.")
        else:
            if val is None:
                train, val = self._holdout(*train, f"sequences ({len(train[1])})")
            parts = {"train": train, "val": val, "test": test}
            train_x = as_tensor(train[0]).float().div_(255.0)
            self.mean, self.std = float(train_x.mean()), max(float(train_x.std()), 1e-3)
        self._store(parts)

    def prepare(self, x, y) -> tuple:
        """Language modelling: the window's first ``seq_len`` tokens and, flattened, the next token of each;
        classification: the sequences normalised."""
        if self.task == "lm":
            return x[:, :-1].long(), x[:, 1:].reshape(-1).long()
        return (x.float() / 255.0 - self.mean) / self.std, y

    def state_dict(self):
        return {"mean": self.mean, "std": self.std}
