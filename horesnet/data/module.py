"""The data module: a whole dataset held as uint8 tensors, split 45k/5k-style, batched by index.

Batches are fetched with one indexing op (``__getitems__``); augmentation and normalisation run on the training
device in ``on_after_batch_transfer``, seeded by (seed, global step, rank), and the batch order is a function of
(seed, epoch): a resumed run sees the same batches, also when it resumes mid-epoch (:class:`ResumableLoader`).
"""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler

from ..errors import ConfigError
from .augment import normalise, random_crop_flip
from .registry import DATASETS, get_dataset, missing_error
from .sources import DOWNLOADS_OFF, DataError, data_root


def load_arrays(name: str, root=None, download: bool = True, verify: bool = True, options: dict | None = None):
    """``(x_train, y_train, x_test, y_test)`` numpy arrays of the registered dataset ``name``; ``options`` are its
    own config keys. What the reader returns is checked: uint8 (N, C, H, W) images and N int64 labels."""
    ds = get_dataset(name)
    arrays = ds.load(data_root(root), download, verify, dict(options or {}))
    if not isinstance(arrays, tuple | list) or len(arrays) != 4:
        raise DataError(f"the reader of {name} returned {type(arrays).__name__}, not the four arrays "
                        "(x_train, y_train, x_test, y_test).")
    for split, x, y in (("train", arrays[0], arrays[1]), ("test", arrays[2], arrays[3])):
        if (getattr(x, "dtype", None) != np.uint8 or getattr(x, "ndim", 0) != 4 or getattr(y, "dtype", None)
                != np.int64 or getattr(y, "ndim", 0) != 1 or len(x) != len(y)):
            raise DataError(f"the reader of {name} returned {split} images {getattr(x, 'dtype', '?')} "
                            f"{getattr(x, 'shape', '?')} and labels {getattr(y, 'dtype', '?')} "
                            f"{getattr(y, 'shape', '?')}; expected uint8 (N, C, H, W) images and N int64 labels.")
    return tuple(arrays)


def check_available(name: str, root=None, download: bool = True) -> None:
    """Raise DataError now (before any run folder exists) if ``name`` is neither on disk nor downloadable."""
    import socket

    ds = get_dataset(name)
    root = data_root(root)
    if ds.present is None or ds.present(root):
        return
    if not download:
        raise missing_error(ds, root, DOWNLOADS_OFF)
    for host in ds.hosts:
        try:
            socket.create_connection((host, 443), timeout=5).close()
        except OSError as err:
            raise missing_error(ds, root, f"no network: {host} is unreachable ({err})") from None


class IndexedArrays(Dataset):
    """(images uint8, labels int64) fetched a whole batch at a time."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]

    def __getitems__(self, indices):
        idx = torch.as_tensor(indices, dtype=torch.long).to(self.y.device, non_blocking=True)
        return self.x[idx], self.y[idx]


def as_tensor(a) -> torch.Tensor:
    """A tensor as it is; an array as a contiguous tensor sharing its memory where it can."""
    return a if isinstance(a, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(a))


RESIDENT_MAX_BYTES = 2 * 2**30  # datasets up to this size live on a single GPU for the whole run


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


class ResumableLoader(DataLoader):
    """The training loader, resumable mid-epoch: its state (saved by Lightning in every checkpoint) is the epoch and
    the number of batches it has handed out; a loader given that state skips those batches in that epoch, so that a
    run resumed mid-epoch trains on exactly the batches the uninterrupted run would have. It skips by drawing them
    (index gathers of in-memory tensors: milliseconds), which works under any sampler, a DistributedSampler too."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._epoch, self._handed_out, self._resume_at = None, 0, None

    def __iter__(self):
        # a generator: nothing runs before the first batch is asked for, after Lightning has set the epoch
        epoch, skip = getattr(self.sampler, "epoch", None), 0
        if self._resume_at is not None and self._resume_at[0] == epoch and 0 < self._resume_at[1] < len(self):
            skip = self._resume_at[1]
        self._resume_at = None
        self._epoch, self._handed_out = epoch, skip
        batches = super().__iter__()
        for _ in range(skip):
            next(batches)
        for batch in batches:
            self._handed_out += 1
            yield batch

    def state_dict(self) -> dict:
        return {"epoch": self._epoch, "batches": self._handed_out}

    def load_state_dict(self, state: dict) -> None:
        self._resume_at = (state.get("epoch"), int(state.get("batches", 0)))


class ArrayDataModule(pl.LightningDataModule):
    """Train/validation/test splits of one registered dataset (``horesnet.data.registry``; the options are
    described in docs/extending_datasets.md). ``options``: the dataset's own keys (``synthetic=...`` for the
    synthetic set, a plugin's keys for its dataset), passed to its reader; keys of other registered datasets are
    accepted and ignored, as a data config may carry them."""

    drop_lone = True  # drop a last training batch of one example (BatchNorm cannot normalise it)

    def __init__(self, name: str = "cifar10", root=None, download: bool = True, verify: bool = True,
                 batch_size: int = 128, eval_batch_size: int = 512, val_size: int = 5000, split_seed: int = 0,
                 limit_train: int | None = None, limit_val: int | None = None, limit_test: int | None = None,
                 augment: bool = True, crop_padding: int = 4, flip: bool = True, seed: int = 0,
                 channels: int | None = None, num_classes: int | None = None, num_workers: int = 0, **options):
        super().__init__()
        dataset = get_dataset(name)
        unknown = sorted(set(options) - {key for ds in DATASETS.values() for key in ds.option_keys})
        if unknown:
            raise ConfigError(f"unknown data option(s) {', '.join(unknown)}; the options of {name} beyond the common "
                              f"ones: {', '.join(dataset.option_keys) or 'none'}.")
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
        self.options = {k: v for k, v in options.items() if k in dataset.option_keys}
        self.num_workers = num_workers
        self.splits: dict[str, IndexedArrays] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        x_tr, y_tr, x_te, y_te = load_arrays(self.name, self.root, self.download, self.verify, self.options)
        channels, classes = x_tr.shape[1], int(max(y_tr.max(), y_te.max())) + 1
        if self.expected[0] is not None and self.expected[0] != channels:
            raise DataError(f"data.channels={self.expected[0]} but {self.name} images have {channels} channels.")
        if self.expected[1] is not None and classes > self.expected[1]:
            raise DataError(f"data.num_classes={self.expected[1]} but {self.name} has labels up to {classes - 1}.")
        train, val = self._holdout(x_tr, y_tr, f"images ({len(y_tr)} in total)")
        self._store({"train": train, "val": val, "test": (x_te, y_te)})
        train_x = self.splits["train"].x.float().div_(255.0)
        self.mean = train_x.mean(dim=(0, 2, 3))
        self.std = train_x.std(dim=(0, 2, 3)).clamp_min(1e-3)
        self._place_on_device()

    def _holdout(self, x, y, what: str) -> tuple:
        """``(train, val)`` of the training arrays: ``val_size`` examples drawn by ``split_seed`` held out."""
        if self.val_size >= len(y):
            raise ConfigError(f"data.val_size={self.val_size} leaves no training {what}.")
        order = np.random.default_rng(self.split_seed).permutation(len(y))
        val, train = order[: self.val_size], order[self.val_size:]
        return (x[train], y[train]), (x[val], y[val])

    def _store(self, parts: dict) -> None:
        """``self.splits`` from ``{split: (x, y)}`` (arrays or tensors), each cut to its ``data.limit_*``."""
        for (split, (x, y)), limit in zip(parts.items(), self.limits, strict=True):
            if limit is not None:
                x, y = x[:limit], y[:limit]
            self.splits[split] = IndexedArrays(as_tensor(x), as_tensor(y))

    def _place_on_device(self) -> None:
        """On a single CUDA device, keep the whole uint8 dataset there (batches are cut on the GPU: no copy per
        step); elsewhere the loader pins its batches so that Lightning's non-blocking copy overlaps compute."""
        trainer = self.trainer
        device = trainer.strategy.root_device if trainer is not None else None
        nbytes = sum(s.x.numel() + 8 * s.y.numel() for s in self.splits.values())
        if device is not None and device.type == "cuda" and trainer.world_size == 1 and nbytes < RESIDENT_MAX_BYTES:
            self.splits = {name: IndexedArrays(s.x.to(device), s.y.to(device)) for name, s in self.splits.items()}

    def _loader(self, split: str, train: bool) -> DataLoader:
        data = self.splits[split]
        # a last training batch of one image is dropped: BatchNorm cannot normalise one value per channel (an
        # ImageNet network's 1x1 last stage); every other remainder is trained as before (docs/training.md)
        lone = train and self.drop_lone and len(data) % self.batch_size == 1 and len(data) > 1
        return (ResumableLoader if train else DataLoader)(
            data, batch_size=self.batch_size if train else self.eval_batch_size,
            sampler=EpochRandomSampler(data, self.seed) if train else None, collate_fn=_as_batch,
            num_workers=self.num_workers, drop_last=lone,
            pin_memory=torch.cuda.is_available() and data.y.device.type == "cpu")

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
        return self.prepare(x, y)

    def prepare(self, x, y) -> tuple:
        """A batch as the model takes it (after any augmentation): images normalised."""
        return normalise(x, self.mean, self.std), y

    def eval_batches(self, split: str, limit: int | None = None, batch_size: int = 250) -> list[tuple]:
        """The first ``limit`` examples of ``split`` as model-ready ``(x, y)`` batches (no shuffling, no
        augmentation)."""
        data = self.splits[split]
        n = len(data) if limit is None else min(limit, len(data))
        return [self.prepare(data.x[i:min(i + batch_size, n)], data.y[i:min(i + batch_size, n)])
                for i in range(0, n, batch_size)]

    def state_dict(self):
        return {"mean": self.mean, "std": self.std} if self.splits else {}

    def load_state_dict(self, state):
        if state:
            self.mean, self.std = state["mean"], state["std"]
