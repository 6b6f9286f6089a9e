"""The data module of sequence datasets (``horesnet/data/sequences.py``): whole splits held as tensors, batched by
index, in the order of (seed, epoch) and resumable mid-epoch as the image module's (``module.py``).

Language modelling: each split's token stream is cut into non-overlapping windows of ``seq_len + 1`` tokens;
a batch is ``(x, y)`` with ``x`` the first ``seq_len`` tokens of each window ``(B, T)`` and ``y`` the next token
at every position, flattened ``(B * T,)`` (what the classifier's loss and metrics take). Sequence
classification: ``x`` float ``(B, T, F)`` normalised by the training set's mean and standard deviation, ``y``
``(B,)``. ``data.limit_*`` count sequences.
"""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from ..errors import ConfigError
from .module import EpochRandomSampler, ResumableLoader
from .registry import all_option_keys, get_dataset, missing_error
from .sequences import seq_len_of, task_of
from .sources import DataError, data_root


class Batched(torch.utils.data.Dataset):
    """``(x, y)`` tensors fetched a whole batch at a time."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i], self.y[i]

    def __getitems__(self, indices):
        idx = torch.as_tensor(indices, dtype=torch.long)
        return self.x[idx], self.y[idx]


def windows(tokens: np.ndarray, seq_len: int) -> torch.Tensor:
    """Non-overlapping windows of ``seq_len + 1`` tokens (consecutive windows share one token)."""
    n = (len(tokens) - 1) // seq_len
    if n < 1:
        raise ConfigError(f"a split of {len(tokens)} tokens holds no sequence of {seq_len} + 1 tokens.")
    starts = np.arange(n)[:, None] * seq_len + np.arange(seq_len + 1)[None, :]
    return torch.from_numpy(np.ascontiguousarray(tokens[starts]))


def _identity(batch):
    return batch


class SequenceDataModule(pl.LightningDataModule):
    """Train/validation/test sequences of a registered sequence dataset (the data config's keys, as
    ``ArrayDataModule`` takes them; image-only keys such as ``augment`` are ignored)."""

    def __init__(self, name: str, root=None, download: bool = True, verify: bool = True, batch_size: int = 32,
                 eval_batch_size: int = 256, val_size: int = 0, split_seed: int = 0, limit_train=None,
                 limit_val=None, limit_test=None, seed: int = 0, channels=None, num_classes=None, num_workers: int = 0,
                 augment=None, crop_padding=None, flip=None, **options):
        super().__init__()
        dataset = get_dataset(name)
        unknown = sorted(set(options) - all_option_keys())
        if unknown:
            raise ConfigError(f"unknown data option(s) {', '.join(unknown)}; the options of {name} beyond the common "
                              f"ones: {', '.join(dataset.option_keys) or 'none'}.")
        self.name, self.root, self.download, self.verify = name, root, download, verify
        self.task = task_of({"name": name})
        self.seq_len = seq_len_of({"name": name, **options})
        self.batch_size, self.eval_batch_size, self.num_workers = batch_size, eval_batch_size, num_workers
        self.val_size, self.split_seed, self.seed = val_size, split_seed, seed
        self.limits = (limit_train, limit_val, limit_test)
        self.num_classes = num_classes
        self.options = {k: v for k, v in options.items() if k in dataset.option_keys}
        self.splits: dict[str, Batched] = {}
        self.mean, self.std = 0.0, 1.0

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        ds = get_dataset(self.name)
        root = data_root(self.root)
        if ds.present is not None and not ds.present(root) and not self.download:
            raise missing_error(ds, root, "downloads are off (data.download=false)")
        train, val, test, _ = ds.load(root, self.download, self.verify, self.options)
        if self.task == "lm":
            parts = {split: windows(tokens, self.seq_len) for split, tokens in
                     (("train", train), ("val", val), ("test", test))}
            parts = {split: (w, torch.zeros(len(w), dtype=torch.int64)) for split, w in parts.items()}
            top = max(int(w.max()) for w, _ in parts.values())
            if self.num_classes is not None and top >= self.num_classes:
                raise DataError(f"data.num_classes={self.num_classes} but {self.name} has token ids up to {top}.")
        else:
            (x, y), (x_te, y_te) = train, test
            if val is None:
                if self.val_size >= len(y):
                    raise ConfigError(f"data.val_size={self.val_size} leaves no training sequences ({len(y)}).")
                order = np.random.default_rng(self.split_seed).permutation(len(y))
                val = (x[order[: self.val_size]], y[order[: self.val_size]])
                x, y = x[order[self.val_size:]], y[order[self.val_size:]]
            parts = {split: (torch.from_numpy(np.ascontiguousarray(a)), torch.from_numpy(np.asarray(b)))
                     for split, (a, b) in (("train", (x, y)), ("val", val), ("test", (x_te, y_te)))}
            train_x = parts["train"][0].float().div_(255.0)
            self.mean, self.std = float(train_x.mean()), max(float(train_x.std()), 1e-3)
        for (split, (x, y)), limit in zip(parts.items(), self.limits, strict=True):
            if limit is not None:
                x, y = x[:limit], y[:limit]
            self.splits[split] = Batched(x, y)

    def _loader(self, split: str, train: bool) -> DataLoader:
        data = self.splits[split]
        return (ResumableLoader if train else DataLoader)(
            data, batch_size=self.batch_size if train else self.eval_batch_size,
            sampler=EpochRandomSampler(data, self.seed) if train else None, collate_fn=_identity,
            num_workers=self.num_workers, drop_last=False, pin_memory=torch.cuda.is_available())

    def train_dataloader(self):
        return self._loader("train", True)

    def val_dataloader(self):
        return self._loader("val", False)

    def test_dataloader(self):
        return self._loader("test", False)

    def predict_dataloader(self):
        return self._loader("test", False)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        x, y = batch
        if self.task == "lm":
            return x[:, :-1].long(), x[:, 1:].reshape(-1).long()
        return (x.float() / 255.0 - self.mean) / self.std, y

    def eval_batches(self, split: str, limit: int | None = None, batch_size: int = 250) -> list[tuple]:
        """The first ``limit`` sequences of ``split`` as model-ready ``(x, y)`` batches (no shuffling)."""
        data = self.splits[split]
        n = len(data) if limit is None else min(limit, len(data))
        return [self.on_after_batch_transfer((data.x[i:min(i + batch_size, n)], data.y[i:min(i + batch_size, n)]), 0)
                for i in range(0, n, batch_size)]

    def state_dict(self):
        return {"mean": self.mean, "std": self.std}

    def load_state_dict(self, state):
        if state:
            self.mean, self.std = state["mean"], state["std"]
