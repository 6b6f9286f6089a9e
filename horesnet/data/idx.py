"""MNIST and Fashion-MNIST from IDX files (LeCun et al.; Xiao et al. 2017), gzipped or not.

Looked up in the data root, in torchvision's layout, and where Debian's ``dataset-fashion-mnist`` package puts
them (``/usr/share/datasets/fashion-mnist``); downloaded when online. Images are padded to 32x32 so the CIFAR
architectures apply unchanged.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .sources import DataError, Download, checksum, obtain

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


@dataclass(frozen=True)
class IdxSpec:
    name: str
    url: str
    folders: tuple[str, ...]
    system_dirs: tuple[str, ...]
    md5s: dict  # file.gz -> set of accepted md5s (official release, Debian's package)
    install_hint: str = ""  # how else to get the files, ending the missing-data message


IDX = {
    "fashion_mnist": IdxSpec(
        "fashion_mnist", "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ("fashion_mnist", "fashion-mnist", "FashionMNIST/raw"), ("/usr/share/datasets/fashion-mnist",),
        {"train-images-idx3-ubyte.gz": {"8d4fb7e6c68d591d4c3dfef9ec88bf0d", "cf8536b0aa1a6ac5fa3f23001093305c"},
         "train-labels-idx1-ubyte.gz": {"25c81989df183df01b3e8a0aad5dffbe", "10bea18fdb374794d4bb42e356e600c9"},
         "t10k-images-idx3-ubyte.gz": {"bef4ecab320f06d8554ea6380940ec79", "f78720b4224f21cce2f2ccf2d7a94c9a"},
         "t10k-labels-idx1-ubyte.gz": {"bb300cfdad3c16e7a12a480ee83cd310", "0d30e22e447f3c33dab9ed536400ac01"}},
        "install Debian's dataset-fashion-mnist package (apt-get install dataset-fashion-mnist)"),
    "mnist": IdxSpec(
        "mnist", "https://ossci-datasets.s3.amazonaws.com/mnist/", ("mnist", "MNIST/raw"),
        ("/usr/share/datasets/mnist",),
        {"train-images-idx3-ubyte.gz": {"f68b3c2dcbeaaa9fbdd348bbdeb94873"},
         "train-labels-idx1-ubyte.gz": {"d53e105ee54ea40749a09fcbcd1e9432"},
         "t10k-images-idx3-ubyte.gz": {"9fb629c4189551a2d022fa330f9573f3"},
         "t10k-labels-idx1-ubyte.gz": {"ec29112dd5afa0611ce80d1b7f02629c"}}),
}


def read_idx(path: Path) -> np.ndarray:
    """Read an unsigned-byte IDX file (magic 0x0000 08 <ndim>), gzipped or plain, checking its header."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise DataError(f"{path} is a damaged gzip file ({err}); delete it and fetch it again.") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or not 1 <= raw[3] <= 4:
        raise DataError(f"{path} is not an unsigned-byte IDX file (bad magic number {raw[:4].hex()}).")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header.")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(dims))
    if len(raw) - header != size:
        raise DataError(f"{path}: header says {dims} = {size} bytes of data but the file holds {len(raw) - header}; "
                        "the file is truncated or corrupt.")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


def locate(spec: IdxSpec, root: Path) -> dict[str, Path] | None:
    """The four IDX files (gzipped or not) found together in one folder: ``root/<folder>`` for each of the
    spec's folders, ``root`` itself, then the system folders; None when no folder holds all four."""
    for d in [root / f for f in spec.folders] + [root] + [Path(s) for s in spec.system_dirs]:
        found = {name: next((c for c in (d / (name + ".gz"), d / name) if c.is_file()), None) for name in FILES}
        if all(found.values()):
            return found
    return None


def load_idx_dataset(name: str, root: Path, download_ok: bool = True, verify: bool = True, pad_to: int = 32):
    """``(x_train, y_train, x_test, y_test)``: uint8 (N, 1, pad_to, pad_to) images and int64 labels."""
    spec = IDX[name]
    files = locate(spec, root)
    if files is None:
        obtain([(spec.url + f + ".gz", root / spec.folders[0] / (f + ".gz"), spec.md5s[f + ".gz"]) for f in FILES],
               download_ok, lambda why: missing_error(spec, root, why))
        files = locate(spec, root)
    if verify:
        for name_, path in files.items():
            accepted = spec.md5s[name_ + ".gz"]
            if path.suffix == ".gz" and checksum(path) not in accepted:
                raise DataError(f"{path} has an unknown md5 (accepted: {', '.join(sorted(accepted))}); it is "
                                "corrupt or not the official release. Fetch it again, or set data.verify=false.")
    arrays = {n: read_idx(p) for n, p in files.items()}
    out = []
    for images, labels in ((FILES[0], FILES[1]), (FILES[2], FILES[3])):
        x, y = arrays[images], arrays[labels].astype(np.int64)
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DataError(f"{files[images]} / {files[labels]}: {x.shape} images do not match {y.shape} labels.")
        if len(y) and y.max() > 9:
            raise DataError(f"{files[labels]}: labels outside 0..9.")
        ph, pw = pad_to - x.shape[1], pad_to - x.shape[2]
        if ph < 0 or pw < 0:
            raise DataError(f"{files[images]}: images of {x.shape[1:]} are larger than {pad_to}x{pad_to}.")
        x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)))[:, None]
        out += [x, y]
    return tuple(out)


def registration(name: str) -> dict:
    """``register_dataset``'s ``downloads``, ``present`` and ``missing`` for the IDX set ``name`` (its spec is
    looked up when they are called, so a test may replace it)."""
    spec = IDX[name]
    return {"downloads": tuple(Download(spec.url + f + ".gz", frozenset(spec.md5s[f + ".gz"])) for f in FILES),
            "present": lambda root: locate(IDX[name], root) is not None,
            "missing": lambda root, why: missing_error(IDX[name], root, why)}


def missing_error(spec: IdxSpec, root: Path, why: str) -> DataError:
    """The DataError for an IDX set that is neither on disk nor downloadable (``why``)."""
    files = ", ".join(f + ".gz" for f in FILES)
    return DataError(
        f"{spec.name} is not under {root} (nor in {', '.join(spec.system_dirs)}) and could not be downloaded "
        f"({why}). Put {files} (from {spec.url}) in {root / spec.folders[0]}, point data.root=... at them"
        + (f", or {spec.install_hint}." if spec.install_hint else "."))
