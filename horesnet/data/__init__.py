"""Datasets held as uint8 tensors, with batched on-device augmentation (DESIGN.md "Training: Data")."""

from .augment import normalise, random_crop_flip
from .cifar import CIFAR, RestrictedUnpickler, load_cifar, safe_unpickle
from .idx import IDX, load_idx_dataset, read_idx
from .module import DATASETS, ArrayDataModule, check_available, load_arrays
from .sources import DataError, data_root
from .synthetic import make_synthetic

__all__ = [
    "CIFAR", "DATASETS", "IDX", "ArrayDataModule", "check_available", "DataError", "RestrictedUnpickler", "data_root",
    "load_arrays", "load_cifar", "load_idx_dataset", "make_synthetic", "normalise", "random_crop_flip",
    "read_idx", "safe_unpickle",
]
