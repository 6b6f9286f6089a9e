"""The built-in datasets, registered through the same ``register_dataset`` a plugin uses (docs/extending_datasets.md).

CIFAR-10/100 come from the python-pickle archive (``cifar.py``), Fashion-MNIST and MNIST from IDX files
(``idx.py``, 28x28 images padded to 32x32 so the CIFAR architectures apply unchanged), ``synthetic`` is generated
(``synthetic.py``). The readers' specs are looked up when called, so a test may replace one.
"""

from __future__ import annotations

from pathlib import Path

from ..spec import POSITIVE_INT, Option, Spec
from . import cifar, idx
from .registry import DatasetFacts, Download, register_dataset
from .synthetic import make_synthetic


def _register_cifar(name: str, description: str) -> None:
    spec = cifar.CIFAR[name]
    register_dataset(
        name, lambda root, download, verify, options: cifar.load_cifar(name, root, download, verify),
        DatasetFacts(3, spec.num_classes, 50_000), description=description,
        downloads=(Download(spec.url, frozenset({spec.archive_md5})),),
        present=lambda root: cifar.is_present(cifar.CIFAR[name], root),
        missing=lambda root, why: cifar.missing_error(cifar.CIFAR[name], root, why))


def _register_idx(name: str, description: str) -> None:
    register_dataset(
        name, lambda root, download, verify, options: idx.load_idx_dataset(name, root, download, verify),
        DatasetFacts(1, 10, 60_000), description=description, **idx.registration(name))


def _load_synthetic(root: Path, download: bool, verify: bool, options: dict):
    return make_synthetic(**(options.get("synthetic") or {}))


def _synthetic_facts(data: dict) -> DatasetFacts:
    syn = data.get("synthetic") or {}
    return DatasetFacts(syn.get("channels", 3), syn.get("num_classes", 10), syn.get("train_size", 1024))


_register_cifar("cifar10", "CIFAR-10 (Krizhevsky 2009): 50k/10k 32x32 colour images, 10 classes")
_register_cifar("cifar100", "CIFAR-100 (Krizhevsky 2009): 50k/10k 32x32 colour images, 100 fine classes")
_register_idx("fashion_mnist", "Fashion-MNIST (Xiao et al. 2017): 60k/10k grey images, 10 classes, padded to 32x32")
_register_idx("mnist", "MNIST (LeCun et al. 1998): 60k/10k grey digits, padded to 32x32")
register_dataset(
    "synthetic", _load_synthetic, _synthetic_facts,
    description="Synthetic learnable images (class prototypes + noise): smoke tests and benchmarks, no files",
    defaults={"channels": 3, "num_classes": 10, "val_size": 128, "batch_size": 32, "eval_batch_size": 128},
    options={"data.synthetic.train_size": Option(640, POSITIVE_INT, "training images generated"),
             "data.synthetic.test_size": Option(128, POSITIVE_INT, "test images generated"),
             "data.synthetic.num_classes": Option("${..num_classes}", Spec("int", low=2), "classes (data.num_classes)"),
             "data.synthetic.channels": Option("${..channels}", POSITIVE_INT, "image channels (data.channels)"),
             "data.synthetic.image_size": Option(32, Spec("int", low=4), "image side in pixels")})
