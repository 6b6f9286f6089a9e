"""The data module: a whole dataset held as uint8 tensors, split 45k/5k-style, batched by index.

Batches are fetched with one indexing op (``__getitems__``); augmentation and normalisation run on the training
device in ``on_after_batch_transfer``, seeded by (seed, global step, rank) so a resumed run sees the same batches.
"""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from ..errors import ConfigError, check_choice
from .augment import normalise, random_crop_flip
from .catalog import DATASETS, DatasetFacts, dataset_facts  # noqa: F401 -- re-exported
from .cifar import CIFAR, load_cifar
from .idx import IDX, load_idx_dataset
from .sources import DataError, data_root
from .synthetic import make_synthetic


def load_arrays(name: str, root=None, download: bool = True, verify: bool = True, synthetic: dict | None = None):
    """``(x_train, y_train, x_test, y_test)`` numpy arrays of dataset ``name``."""
    check_choice("data.name", name, DATASETS)
    if name in CIFAR:
        return load_cifar(name, data_root(root), download, verify)
    if name in IDX:
        return load_idx_dataset(name, data_root(root), download, verify)
    return make_synthetic(**(synthetic or {}))


_HOSTS = {"cifar10": "www.cs.toronto.edu", "cifar100": "www.cs.toronto.edu",
          "fashion_mnist": "raw.githubusercontent.com", "mnist": "ossci-datasets.s3.amazonaws.com"}


def check_available(name: str, root=None, download: bool = True) -> None:
    """Raise DataError now (before any run folder exists) if ``name`` is neither on disk nor downloadable."""
    import socket

    from .cifar import _missing as cifar_missing
    from .idx import _locate
    from .idx import _missing as idx_missing

    check_choice("data.name", name, DATASETS)
    root = data_root(root)
    if name in CIFAR:
        spec = CIFAR[name]
        present = (root / spec.folder).is_dir() or (root / spec.archive).is_file()
        missing = cifar_missing
    elif name in IDX:
        spec = IDX[name]
        present = _locate(spec, root) is not None
        missing = idx_missing
    else:
        return
    if present:
        return
    if not download:
        raise missing(spec, root, "downloads are off (data.download=false)")
    try:
        socket.create_connection((_HOSTS[name], 443), timeout=5).close()
    except OSError as err:
        raise missing(spec, root, f"no network: {_HOSTS[name]} is unreachable ({err})") from None


class IndexedArrays(Dataset):
    """(images uint8, labels int64) fetched a whole batch at a time."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]

    def __getitems__(self, indices):
        idx = torch.as_tensor(indices, dtype=torch.long)
        return self.x[idx], self.y[idx]


def _as_batch(batch):
    return batch


class EpochRandomSampler(RandomSampler):
    """A RandomSampler whose order depends only on (seed, epoch): resumed runs reshuffle identically."""

    def __init__(self, data_source, seed: int = 0):
        super().__init__(data_source)
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        yield from torch.randperm(len(self.data_source), generator=g).tolist()


class ArrayDataModule(pl.LightningDataModule):
    """Train/validation/test splits of one dataset; see ``configs/data/*.yaml`` for the options."""

    def __init__(self, name: str = "cifar10", root=None, download: bool = True, verify: bool = True,
                 batch_size: int = 128, eval_batch_size: int = 512, val_size: int = 5000, split_seed: int = 0,
                 limit_train: int | None = None, limit_val: int | None = None, limit_test: int | None = None,
                 augment: bool = True, crop_padding: int = 4, flip: bool = True, seed: int = 0,
                 channels: int | None = None, num_classes: int | None = None, synthetic: dict | None = None,
                 num_workers: int = 0):
        super().__init__()
        check_choice("data.name", name, DATASETS)
        for key, value in (("data.batch_size", batch_size), ("data.eval_batch_size", eval_batch_size)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{key} must be a positive integer, got {value!r}.")
        for key, value in (("data.val_size", val_size), ("data.limit_train", limit_train),
                           ("data.limit_val", limit_val), ("data.limit_test", limit_test)):
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ConfigError(f"{key} must be a non-negative integer or null, got {value!r}.")
        self.name, self.root, self.download, self.verify = name, root, download, verify
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.val_size, self.split_seed = val_size, split_seed
        self.limits = (limit_train, limit_val, limit_test)
        self.augment, self.crop_padding, self.flip, self.seed = augment, crop_padding, flip, seed
        self.expected = (channels, num_classes)
        self.synthetic = synthetic
        self.num_workers = num_workers
        self.splits: dict[str, IndexedArrays] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        x_tr, y_tr, x_te, y_te = load_arrays(self.name, self.root, self.download, self.verify, self.synthetic)
        channels, classes = x_tr.shape[1], int(max(y_tr.max(), y_te.max())) + 1
        if self.expected[0] is not None and self.expected[0] != channels:
            raise DataError(f"data.channels={self.expected[0]} but {self.name} images have {channels} channels.")
        if self.expected[1] is not None and classes > self.expected[1]:
            raise DataError(f"data.num_classes={self.expected[1]} but {self.name} has labels up to {classes - 1}.")
        if self.val_size >= len(y_tr):
            raise ConfigError(f"data.val_size={self.val_size} leaves no training images ({len(y_tr)} in total).")
        order = np.random.default_rng(self.split_seed).permutation(len(y_tr))
        val_idx, train_idx = order[: self.val_size], order[self.val_size:]
        parts = {"train": (x_tr[train_idx], y_tr[train_idx]), "val": (x_tr[val_idx], y_tr[val_idx]),
                 "test": (x_te, y_te)}
        for (split, (x, y)), limit in zip(parts.items(), self.limits, strict=True):
            if limit is not None:
                x, y = x[:limit], y[:limit]
            self.splits[split] = IndexedArrays(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y))
        train_x = self.splits["train"].x.float().div_(255.0)
        self.mean = train_x.mean(dim=(0, 2, 3))
        self.std = train_x.std(dim=(0, 2, 3)).clamp_min(1e-3)

    @property
    def num_channels(self) -> int:
        return self.splits["train"].x.shape[1]

    def _loader(self, split: str, train: bool) -> DataLoader:
        data = self.splits[split]
        return DataLoader(
            data, batch_size=self.batch_size if train else self.eval_batch_size,
            sampler=EpochRandomSampler(data, self.seed) if train else None, collate_fn=_as_batch,
            num_workers=self.num_workers, drop_last=False)

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
        trainer = self.trainer
        if self.augment and trainer is not None and trainer.training:
            g = torch.Generator(device=x.device)
            g.manual_seed((self.seed * 1_000_003 + trainer.global_step) * 1024 + trainer.global_rank)
            x = random_crop_flip(x, self.crop_padding, self.flip, g)
        return normalise(x, self.mean, self.std), y

    def state_dict(self):
        return {"mean": self.mean, "std": self.std} if self.splits else {}

    def load_state_dict(self, state):
        if state:
            self.mean, self.std = state["mean"], state["std"]
