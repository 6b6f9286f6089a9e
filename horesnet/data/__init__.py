"""Datasets held as uint8 tensors, with batched on-device augmentation (docs/design.md, "Data"), and the dataset
registry (docs/extending_datasets.md).

Importing this package registers the built-in datasets (``builtin``), so any use of the registry sees them and
Hydra's ConfigStore holds ``data=<name>`` for each before a command line is composed.
"""

import importlib

from . import (
    builtin,  # noqa: F401 -- registers cifar10, cifar100, fashion_mnist, mnist, synthetic
    sequences,  # noqa: F401 -- registers shakespeare, fashion_mnist_rows (docs/transformers.md)
)
from .registry import DATASETS

DATASETS.lock_builtins()  # what is registered so far is horesnet's own: never replaced, never removed

# Lazy (PEP 562): the registry and the readers load without Lightning; the data module loads on use.
_WHERE = {
    "normalise": "augment", "random_crop_flip": "augment", "CIFAR": "cifar", "RestrictedUnpickler": "cifar",
    "load_cifar": "cifar", "safe_unpickle": "cifar", "IDX": "idx", "load_idx_dataset": "idx", "read_idx": "idx",
    "ArrayDataModule": "module", "check_available": "module", "load_arrays": "module", "DataError": "sources",
    "data_root": "sources", "make_synthetic": "synthetic", "Dataset": "registry", "DatasetFacts": "registry",
    "Download": "sources", "dataset_facts": "registry", "fetch": "registry", "get_dataset": "registry",
    "list_datasets": "registry", "register_dataset": "registry", "unregister_dataset": "registry",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = sorted(_WHERE)
