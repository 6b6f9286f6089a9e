"""Shared helpers of the data tests (test_data_cifar, test_data_idx, test_training_run): Fashion-MNIST from Debian's
package or, where that is not installed, generated in the real gzipped IDX format; a fake network for download tests.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

# Xiao et al. 2017 and the official release: sizes, balanced classes, the first labels, the pixel statistics.
FASHION_PUBLISHED = {"n_train": 60_000, "n_test": 10_000, "first_train": [9, 0, 0, 3, 0, 2, 7, 2, 5, 5],
                     "first_test": [9, 2, 1, 1, 6, 1, 4, 6, 5, 7], "mean": 0.2860, "std": 0.3530}


def idx_bytes(arr: np.ndarray) -> bytes:
    """An unsigned-byte IDX file (LeCun): magic 0x0000 08 <ndim>, big-endian dimensions, then the bytes."""
    magic = 0x00000800 | arr.ndim
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.astype(np.uint8).tobytes()


@dataclass(frozen=True)
class FashionSource:
    """Where the Fashion-MNIST files are and what they hold: ``facts`` as in FASHION_PUBLISHED."""

    folder: Path
    generated: bool
    facts: dict


def fashion_mnist_source(tmp: Path, monkeypatch, per_class_train: int = 60, per_class_test: int = 10,
                         seed: int = 0) -> FashionSource:
    """Debian's Fashion-MNIST if installed; otherwise a small learnable stand-in written to ``tmp`` as the four
    gzipped IDX files (class prototypes plus noise, balanced classes in random order). Either way the reader
    searches that folder as its system folder and accepts its files' md5s, so a test runs the same code."""
    from horesnet.data import IDX

    spec = IDX["fashion_mnist"]
    if FASHION_DIR.is_dir():
        monkeypatch.setitem(IDX, "fashion_mnist", replace(spec, system_dirs=(str(FASHION_DIR),)))
        return FashionSource(FASHION_DIR, False, dict(FASHION_PUBLISHED))
    rng = np.random.default_rng(seed)
    protos = np.kron(rng.normal(0, 1, (10, 4, 4)), np.ones((7, 7)))  # (10, 28, 28) low-frequency prototypes

    def draw(per_class: int):
        y = rng.permutation(np.repeat(np.arange(10), per_class)).astype(np.uint8)
        x = np.clip(110 + 60 * protos[y] + rng.normal(0, 35, (len(y), 28, 28)), 0, 255).astype(np.uint8)
        return x, y

    (x_tr, y_tr), (x_te, y_te) = draw(per_class_train), draw(per_class_test)
    folder = tmp / "fashion-mnist-generated"
    folder.mkdir(parents=True)
    md5s = {}
    for name, arr in zip(IDX_FILES, (x_tr, y_tr, x_te, y_te), strict=True):
        blob = gzip.compress(idx_bytes(arr), compresslevel=1)
        (folder / (name + ".gz")).write_bytes(blob)
        md5s[name + ".gz"] = set(spec.md5s[name + ".gz"]) | {hashlib.md5(blob).hexdigest()}
    monkeypatch.setitem(IDX, "fashion_mnist", replace(spec, system_dirs=(str(folder),), md5s=md5s))
    pixels = x_tr.astype(np.float64) / 255
    facts = {"n_train": len(y_tr), "n_test": len(y_te), "first_train": y_tr[:10].tolist(),
             "first_test": y_te[:10].tolist(), "mean": pixels.mean(), "std": pixels.std()}
    return FashionSource(folder, True, facts)


def _fake_urlopen(monkeypatch, serve):
    """Replace urllib's urlopen: ``serve(url)`` returns the response body (bytes) or a stream."""
    requested = []

    def urlopen(url, timeout=None, **kwargs):
        requested.append(url)
        body = serve(url)
        return io.BytesIO(body) if isinstance(body, bytes) else body

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return requested


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []
