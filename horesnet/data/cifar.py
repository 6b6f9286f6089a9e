"""CIFAR-10/100 from the standard python-pickle archive (Krizhevsky 2009, https://www.cs.toronto.edu/~kriz/).

Reads ``cifar-10-python.tar.gz`` (or the extracted ``cifar-10-batches-py/``) without extracting it, checks the
published md5 checksums, and unpickles with a restricted unpickler that can only rebuild numpy arrays, lists
and dicts: a crafted pickle can never run code.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .sources import DataError, checksum, obtain


@dataclass(frozen=True)
class CifarSpec:
    name: str
    url: str
    archive: str
    archive_md5: str
    folder: str
    train: tuple[tuple[str, str], ...]
    test: tuple[tuple[str, str], ...]
    label_key: str
    num_classes: int


CIFAR = {
    "cifar10": CifarSpec(
        "cifar10", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-python.tar.gz",
        "c58f30108f718f92721af3b95e74349a", "cifar-10-batches-py",
        (("data_batch_1", "c99cafc152244af753f735de768cd75f"), ("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
         ("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"), ("data_batch_4", "634d18415352ddfa80567beed471001a"),
         ("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb")),
        (("test_batch", "40351d587109b95175f43aff81a1287e"),), "labels", 10),
    "cifar100": CifarSpec(
        "cifar100", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "cifar-100-python.tar.gz",
        "eb9058c3a382ffc7106e4002c42a8d85", "cifar-100-python",
        (("train", "16019d7e3df5f24257cddd939b257f8d"),), (("test", "f0ef6b0ae62326f3e7ffdfab6717acfc"),),
        "fine_labels", 100),
}

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the few globals a CIFAR batch needs (numpy array reconstruction)."""

    source = "<data>"

    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise DataError(f"{self.source} tries to load {module}.{name}; a CIFAR batch holds only numpy arrays, "
                        "lists and dicts, so this file is refused (it could run code).")


def safe_unpickle(data: bytes, source: str) -> dict:
    unpickler = RestrictedUnpickler(io.BytesIO(data), encoding="bytes")
    unpickler.source = source
    try:
        obj = unpickler.load()
    except DataError:
        raise
    except Exception as err:  # truncated / garbage pickles raise many types
        raise DataError(f"{source} is not a readable CIFAR batch ({type(err).__name__}: {err}).") from None
    if not isinstance(obj, dict):
        raise DataError(f"{source} holds a {type(obj).__name__}, not a CIFAR batch dict.")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _batch_arrays(batch: dict, spec: CifarSpec, source: str) -> tuple[np.ndarray, np.ndarray]:
    if "data" not in batch or spec.label_key not in batch:
        raise DataError(f"{source} lacks the keys 'data' and {spec.label_key!r} of a {spec.name} batch.")
    x = np.asarray(batch["data"])
    y = np.asarray(batch[spec.label_key], dtype=np.int64)
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072 or len(y) != len(x):
        raise DataError(f"{source}: expected uint8 data of shape (N, 3072) and N labels, got {x.dtype} "
                        f"{x.shape} and {len(y)} labels.")
    if len(y) and (y.min() < 0 or y.max() >= spec.num_classes):
        raise DataError(f"{source}: labels outside 0..{spec.num_classes - 1}.")
    return x.reshape(-1, 3, 32, 32), y


def _read_members(spec: CifarSpec, root: Path, verify: bool) -> dict[str, bytes] | None:
    """The pickled batches by name, from the extracted folder or the archive; None when neither is there."""
    names = [n for n, _ in spec.train + spec.test]
    folder, archive = root / spec.folder, root / spec.archive
    if folder.is_dir():
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise DataError(f"{folder} lacks {', '.join(missing)}; re-extract {spec.archive} there.")
        blobs = {n: (folder / n).read_bytes() for n in names}
        for n, expected in spec.train + spec.test if verify else ():
            if hashlib.md5(blobs[n], usedforsecurity=False).hexdigest() != expected:
                raise DataError(f"{folder / n} has the wrong md5 (expected {expected}); the file is corrupt or not "
                                "the official one. Re-extract the archive, or set data.verify=false.")
        return blobs
    if not archive.is_file():
        return None
    if verify and checksum(archive) != spec.archive_md5:
        raise DataError(f"{archive} has the wrong md5 (expected {spec.archive_md5}): the archive is corrupt or "
                        "not the official one. Delete it and download again, or set data.verify=false.")
    try:
        with tarfile.open(archive, "r:*") as tar:
            blobs = {}
            for n in names:
                member = tar.extractfile(f"{spec.folder}/{n}")
                if member is None:
                    raise KeyError(n)
                blobs[n] = member.read()
    except (tarfile.TarError, KeyError, EOFError, OSError) as err:
        raise DataError(f"{archive} is not a complete {spec.name} archive ({type(err).__name__}: {err}).") from None
    return blobs


def load_cifar(name: str, root: Path, download_ok: bool = True, verify: bool = True):
    """``(x_train, y_train, x_test, y_test)`` as uint8 (N, 3, 32, 32) and int64 arrays."""
    spec = CIFAR[name]
    blobs = _read_members(spec, root, verify)
    if blobs is None:
        obtain([(spec.url, root / spec.archive, spec.archive_md5)], download_ok,
               lambda why: missing_error(spec, root, why))
        blobs = _read_members(spec, root, verify)
    parts = {n: _batch_arrays(safe_unpickle(b, f"{spec.name}:{n}"), spec, f"{spec.name}:{n}") for n, b in blobs.items()}
    return tuple(np.concatenate([parts[n][i] for n, _ in members])
                 for members in (spec.train, spec.test) for i in (0, 1))


def is_present(spec: CifarSpec, root: Path) -> bool:
    """Whether ``root`` holds the archive or its extracted folder (read and checked only when loading)."""
    return (root / spec.folder).is_dir() or (root / spec.archive).is_file()


def missing_error(spec: CifarSpec, root: Path, why: str) -> DataError:
    """The DataError for a CIFAR set that is neither under ``root`` nor downloadable (``why``)."""
    return DataError(
        f"{spec.name} is not under {root} and could not be downloaded ({why}). Put {spec.archive} "
        f"(md5 {spec.archive_md5}, from {spec.url}) or its extracted folder {spec.folder}/ in {root}, or point "
        "data.root=... (or $HORESNET_DATA) at the folder that holds it.")
