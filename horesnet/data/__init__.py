"""Datasets held as uint8 tensors, with batched on-device augmentation (docs/design.md, "Data")."""

import importlib

# Lazy (PEP 562): ``horesnet.data.catalog`` and the readers load without Lightning; the data module loads on use.
_WHERE = {
    "normalise": "augment", "random_crop_flip": "augment", "CIFAR": "cifar", "RestrictedUnpickler": "cifar",
    "load_cifar": "cifar", "safe_unpickle": "cifar", "IDX": "idx", "load_idx_dataset": "idx", "read_idx": "idx",
    "DATASETS": "catalog", "dataset_facts": "catalog", "ArrayDataModule": "module", "check_available": "module",
    "load_arrays": "module", "DataError": "sources", "data_root": "sources", "make_synthetic": "synthetic",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CIFAR", "DATASETS", "IDX", "ArrayDataModule", "check_available", "DataError", "RestrictedUnpickler", "data_root",
    "load_arrays", "load_cifar", "load_idx_dataset", "make_synthetic", "normalise", "random_crop_flip",
    "read_idx", "safe_unpickle", "dataset_facts",
]
