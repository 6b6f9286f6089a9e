"""What is known about each dataset before any file is read: names, image channels, classes, training-set size.
Kept free of Lightning so that a command line is checked quickly."""

from __future__ import annotations

from typing import NamedTuple

DATASETS = ("cifar10", "cifar100", "fashion_mnist", "mnist", "synthetic")


class DatasetFacts(NamedTuple):
    channels: int
    num_classes: int
    train_size: int


_FACTS = {"cifar10": DatasetFacts(3, 10, 50_000), "cifar100": DatasetFacts(3, 100, 50_000),
          "fashion_mnist": DatasetFacts(1, 10, 60_000), "mnist": DatasetFacts(1, 10, 60_000)}


def dataset_facts(data: dict) -> DatasetFacts:
    """Image channels, classes and training-set size of a data config (``synthetic`` reads its own options)."""
    if data["name"] == "synthetic":
        syn = data.get("synthetic") or {}
        return DatasetFacts(syn.get("channels", 3), syn.get("num_classes", 10), syn.get("train_size", 1024))
    return _FACTS[data["name"]]
