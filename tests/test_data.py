"""Tests of horesnet.data: the CIFAR pickle reader, the IDX reader, batched augmentation and the data module.

Expected values come from the file formats themselves (Krizhevsky's CIFAR python batches: a pickled dict whose
b'data' is an N x 3072 uint8 array, 1024 red then 1024 green then 1024 blue values, each channel row-major;
LeCun's IDX format: magic 0x00000803 / 0x00000801 then big-endian dimensions) and from published properties of
Fashion-MNIST (Xiao et al. 2017: 6000 training and 1000 test images per class, pixel mean 0.2860, std 0.3530).
The test archives are built here, byte by byte, in the original layout.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import tarfile
import urllib.request
from dataclasses import replace as dc_replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from horesnet.data import (
    IDX,
    ArrayDataModule,
    DataError,
    check_available,
    load_cifar,
    load_idx_dataset,
    normalise,
    random_crop_flip,
)

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")

# --------------------------------------------------------------------------------------------------------------
# CIFAR archives in the real format
# --------------------------------------------------------------------------------------------------------------

CIFAR_LAYOUT = {
    # name -> (folder, archive, train files, test files, meta file, label key, classes)
    "cifar10": ("cifar-10-batches-py", "cifar-10-python.tar.gz",
                [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "batches.meta", b"labels", 10),
    "cifar100": ("cifar-100-python", "cifar-100-python.tar.gz", ["train"], ["test"], "meta", b"fine_labels", 100),
}


def _batch_pickle(x: np.ndarray, y: list[int], label_key: bytes, title: bytes) -> bytes:
    """One batch file as the original: protocol 2, bytes keys, numpy uint8 data, list labels, byte strings."""
    batch = {b"batch_label": title, label_key: y, b"data": x, b"filenames": [b"img_%d.png" % i for i in range(len(y))]}
    if label_key == b"fine_labels":
        batch[b"coarse_labels"] = [v // 5 for v in y]
    return pickle.dumps(batch, protocol=2)


def make_cifar(root: Path, name: str = "cifar10", archive: bool = True, per_batch: int = 3, seed: int = 0,
               replace: dict[str, bytes] | None = None):
    """Write a small CIFAR dataset under ``root`` (tar.gz or extracted folder); return the expected arrays
    ``(data_train (N,3072), labels_train, data_test, labels_test)`` in file order."""
    folder, archive_name, train, test, meta, label_key, classes = CIFAR_LAYOUT[name]
    rng = np.random.default_rng(seed)
    files, expected = {}, {"train": ([], []), "test": ([], [])}
    for split, names in (("train", train), ("test", test)):
        for n in names:
            x = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
            y = [int(v) for v in rng.integers(0, classes, size=per_batch)]
            files[n] = _batch_pickle(x, y, label_key, n.encode())
            expected[split][0].append(x)
            expected[split][1].append(y)
    meta_key = b"label_names" if name == "cifar10" else b"fine_label_names"
    files[meta] = pickle.dumps({meta_key: [b"class%d" % i for i in range(classes)], b"num_vis": 3072}, protocol=2)
    files.update(replace or {})
    if archive:
        with tarfile.open(root / archive_name, "w:gz") as tar:
            for n, blob in files.items():
                info = tarfile.TarInfo(f"{folder}/{n}")
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
    else:
        (root / folder).mkdir(parents=True)
        for n, blob in files.items():
            (root / folder / n).write_bytes(blob)
    return (np.concatenate(expected["train"][0]), np.concatenate(expected["train"][1]),
            np.concatenate(expected["test"][0]), np.concatenate(expected["test"][1]))


def _check_layout(images: np.ndarray, data: np.ndarray) -> None:
    """pixel [i, c, r, col] == data[i, c*1024 + r*32 + col] (CIFAR: channel planes, each row-major)."""
    assert images.shape == (len(data), 3, 32, 32)
    assert images.dtype == np.uint8
    rng = np.random.default_rng(1)
    for _ in range(200):  # explicit spot checks of the formula
        i, c, r, col = (int(rng.integers(0, len(data))), int(rng.integers(0, 3)), int(rng.integers(0, 32)),
                        int(rng.integers(0, 32)))
        assert images[i, c, r, col] == data[i, c * 1024 + r * 32 + col]
    i_, c_, r_, col_ = np.meshgrid(np.arange(len(data)), np.arange(3), np.arange(32), np.arange(32), indexing="ij")
    np.testing.assert_array_equal(images, data[i_, c_ * 1024 + r_ * 32 + col_])


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
@pytest.mark.parametrize("archive", [True, False], ids=["tar.gz", "folder"])
def test_cifar_reader_real_format(tmp_path, name, archive):
    x_tr, y_tr, x_te, y_te = make_cifar(tmp_path, name, archive=archive)
    got = load_cifar(name, tmp_path, download_ok=False, verify=False)
    assert len(got) == 4
    gx_tr, gy_tr, gx_te, gy_te = got
    n_train = 15 if name == "cifar10" else 3  # 5 batches of 3 / one train file of 3
    assert len(gx_tr) == n_train and len(gx_te) == 3
    _check_layout(gx_tr, x_tr)
    _check_layout(gx_te, x_te)
    np.testing.assert_array_equal(gy_tr, y_tr)
    np.testing.assert_array_equal(gy_te, y_te)
    assert np.issubdtype(np.asarray(gy_tr).dtype, np.integer)


def test_cifar_reader_accepts_numpy1_pickles(tmp_path):
    """The official files were written by numpy 1 (``numpy.core.multiarray._reconstruct``) in Python 2."""
    _, _, _, _ = make_cifar(tmp_path, "cifar10", archive=False)
    folder = tmp_path / "cifar-10-batches-py"
    x = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    blob = _batch_pickle(x, [3, 7], b"labels", b"b1")
    old = blob.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    (folder / "data_batch_1").write_bytes(old)
    gx, gy, _, _ = load_cifar("cifar10", tmp_path, download_ok=False, verify=False)
    _check_layout(gx[:2], x)
    assert list(gy[:2]) == [3, 7]


@pytest.mark.parametrize("archive", [True, False], ids=["tar.gz", "folder"])
def test_cifar_checksums_reject_unofficial_files(tmp_path, archive):
    make_cifar(tmp_path, "cifar10", archive=archive)
    with pytest.raises(DataError, match="md5"):
        load_cifar("cifar10", tmp_path, download_ok=False)  # verify=True is the default
    load_cifar("cifar10", tmp_path, download_ok=False, verify=False)


class _Evil:
    """Unpickling this runs ``touch <path>``."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


@pytest.mark.parametrize("archive", [True, False], ids=["tar.gz", "folder"])
def test_malicious_pickle_is_refused_without_running(tmp_path, archive):
    pwned = tmp_path / "pwned"
    evil = pickle.dumps({b"data": _Evil(pwned), b"labels": [0]}, protocol=2)
    assert b"system" in evil
    root = tmp_path / "root"
    root.mkdir()
    make_cifar(root, "cifar10", archive=archive, replace={"data_batch_3": evil})
    with pytest.raises(DataError) as info:
        load_cifar("cifar10", root, download_ok=False, verify=False)
    assert "data_batch_3" in str(info.value)
    assert "system" in str(info.value)
    assert not pwned.exists(), "the malicious pickle ran code"
    # the same payload as a whole file (not inside the dict)
    (pwned.parent / "x").mkdir()
    make_cifar(pwned.parent / "x", "cifar10", archive=archive, replace={"test_batch": pickle.dumps(_Evil(pwned))})
    with pytest.raises(DataError):
        load_cifar("cifar10", pwned.parent / "x", download_ok=False, verify=False)
    assert not pwned.exists(), "the malicious pickle ran code"


def test_truncated_archive(tmp_path):
    make_cifar(tmp_path, "cifar10", per_batch=50)
    path = tmp_path / "cifar-10-python.tar.gz"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError) as info:
        load_cifar("cifar10", tmp_path, download_ok=False, verify=False)
    msg = str(info.value)
    assert str(path) in msg and ("complete" in msg or "truncated" in msg or "corrupt" in msg)


def test_garbage_archive_and_batch(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "cifar-10-python.tar.gz").write_bytes(os.urandom(4000))
    with pytest.raises(DataError, match="cifar-10-python.tar.gz"):
        load_cifar("cifar10", tmp_path / "a", download_ok=False, verify=False)
    (tmp_path / "b").mkdir()
    make_cifar(tmp_path / "b", "cifar10", archive=False, replace={"data_batch_2": b"\x80\x02garbage" + os.urandom(300)})
    with pytest.raises(DataError, match="data_batch_2"):
        load_cifar("cifar10", tmp_path / "b", download_ok=False, verify=False)
    # a well-formed pickle of the wrong shape of data
    bad = pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, protocol=2)
    (tmp_path / "c").mkdir()
    make_cifar(tmp_path / "c", "cifar10", archive=False, replace={"test_batch": bad})
    with pytest.raises(DataError, match="3072"):
        load_cifar("cifar10", tmp_path / "c", download_ok=False, verify=False)
    # labels outside 0..9
    bad = _batch_pickle(np.zeros((2, 3072), np.uint8), [0, 10], b"labels", b"x")
    (tmp_path / "d").mkdir()
    make_cifar(tmp_path / "d", "cifar10", archive=False, replace={"data_batch_1": bad})
    with pytest.raises(DataError, match="label"):
        load_cifar("cifar10", tmp_path / "d", download_ok=False, verify=False)


@pytest.mark.parametrize("name, archive_name", [("cifar10", "cifar-10-python.tar.gz"),
                                                ("cifar100", "cifar-100-python.tar.gz")])
def test_missing_cifar_names_root_and_archive(tmp_path, name, archive_name):
    root = tmp_path / "empty"
    root.mkdir()
    with pytest.raises(DataError) as info:
        load_cifar(name, root, download_ok=False)
    assert str(root) in str(info.value) and archive_name in str(info.value)
    with pytest.raises(DataError) as info:
        check_available(name, root, download=False)
    assert str(root) in str(info.value) and archive_name in str(info.value)
    assert list(root.iterdir()) == []  # nothing half-written


def test_check_available_idx_missing(tmp_path):
    # MNIST has no system copy on the CI machine (only Fashion-MNIST is installed there).
    assert not Path("/usr/share/datasets/mnist").exists()
    with pytest.raises(DataError) as info:
        check_available("mnist", tmp_path, download=False)
    assert str(tmp_path) in str(info.value) and "train-images-idx3-ubyte" in str(info.value)


def test_check_available_passes_when_present(tmp_path):
    make_cifar(tmp_path, "cifar10")
    check_available("cifar10", tmp_path, download=False)
    check_available("synthetic", tmp_path, download=False)


# --------------------------------------------------------------------------------------------------------------
# Downloads (the network is replaced by a fake urlopen)
# --------------------------------------------------------------------------------------------------------------


class _BrokenStream(io.RawIOBase):
    """A response that delivers some bytes, then the connection drops."""

    def __init__(self):
        self.sent = False

    def read(self, n=-1):
        if not self.sent:
            self.sent = True
            return b"\x1f\x8b" + b"x" * 5000
        raise ConnectionResetError(104, "Connection reset by peer")


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


def test_interrupted_download_leaves_nothing(tmp_path, monkeypatch):
    root = tmp_path / "data"
    requested = _fake_urlopen(monkeypatch, lambda url: _BrokenStream())
    with pytest.raises(DataError) as info:
        load_cifar("cifar10", root, download_ok=True)
    assert requested == ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]
    assert str(root) in str(info.value) and "cifar-10-python.tar.gz" in str(info.value)
    assert _files(root) == [], "a half-downloaded file was left behind"


def test_download_with_wrong_checksum_is_discarded(tmp_path, monkeypatch):
    (tmp_path / "src").mkdir()
    make_cifar(tmp_path / "src", "cifar10")
    body = (tmp_path / "src" / "cifar-10-python.tar.gz").read_bytes()
    _fake_urlopen(monkeypatch, lambda url: body)
    root = tmp_path / "data"
    with pytest.raises(DataError, match="md5"):
        load_cifar("cifar10", root, download_ok=True)
    assert _files(root) == [], "a download that fails its checksum must not be kept"


def test_fashion_mnist_download_accepts_every_listed_checksum(tmp_path, monkeypatch):
    """The reader lists two accepted md5s per Fashion-MNIST file (the official release and Debian's re-compressed
    copy). A download whose bytes match one of them must be accepted. Served here: Debian's files."""
    assert FASHION_DIR.is_dir(), f"{FASHION_DIR} is missing: install Debian's dataset-fashion-mnist package."
    monkeypatch.setitem(IDX, "fashion_mnist", dc_replace(IDX["fashion_mnist"], system_dirs=()))
    requested = _fake_urlopen(monkeypatch, lambda url: (FASHION_DIR / url.rsplit("/", 1)[-1]).read_bytes())
    root = tmp_path / "data"
    x_tr, y_tr, x_te, y_te = load_idx_dataset("fashion_mnist", root, download_ok=True, verify=True)
    assert len(requested) == 4 and all(u.startswith(IDX["fashion_mnist"].url) for u in requested)
    assert x_tr.shape == (60000, 1, 32, 32) and x_te.shape == (10000, 1, 32, 32)
    assert sorted(p.name for p in _files(root)) == sorted(p.name for p in FASHION_DIR.iterdir())


# --------------------------------------------------------------------------------------------------------------
# IDX
# --------------------------------------------------------------------------------------------------------------


def _idx_bytes(arr: np.ndarray) -> bytes:
    magic = 0x00000800 | arr.ndim
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in arr.shape) + arr.astype(np.uint8).tobytes()


def make_idx(root: Path, gz_train: bool, gz_test: bool, n_train: int = 7, n_test: int = 5, seed: int = 0,
             replace: dict[str, bytes] | None = None):
    rng = np.random.default_rng(seed)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8)}
    root.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        raw = (replace or {}).get(name, _idx_bytes(arr))
        if gz_train if name.startswith("train") else gz_test:
            (root / (name + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (root / name).write_bytes(raw)
    return arrays


@pytest.mark.parametrize("gz_train, gz_test", [(True, True), (False, False), (True, False)])
def test_idx_reader_pads_and_preserves(tmp_path, gz_train, gz_test):
    arrays = make_idx(tmp_path, gz_train, gz_test)
    x_tr, y_tr, x_te, y_te = load_idx_dataset("fashion_mnist", tmp_path, download_ok=False, verify=False)
    for x, images in ((x_tr, arrays["train-images-idx3-ubyte"]), (x_te, arrays["t10k-images-idx3-ubyte"])):
        assert x.shape == (len(images), 1, 32, 32) and x.dtype == np.uint8
        np.testing.assert_array_equal(x[:, 0, 2:30, 2:30], images)
        border = x.copy()
        border[:, :, 2:30, 2:30] = 0
        assert not border.any(), "padding must be zeros, 2 pixels on each side"
    np.testing.assert_array_equal(y_tr, arrays["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(y_te, arrays["t10k-labels-idx1-ubyte"])


def test_idx_checksum_rejects_unofficial(tmp_path):
    make_idx(tmp_path, True, True)
    with pytest.raises(DataError, match="md5"):
        load_idx_dataset("fashion_mnist", tmp_path, download_ok=False, verify=True)


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("damage", ["magic", "type", "truncated", "extra", "count"])
def test_idx_corrupt_files(tmp_path, gz, damage):
    good = _idx_bytes(np.zeros((7, 28, 28), np.uint8))
    bad = {"magic": b"\x12\x34" + good[2:],
           "type": b"\x00\x00\x0d\x03" + good[4:],  # 0x0D = float: not unsigned bytes
           "truncated": good[:-100],
           "extra": good + b"\x00" * 10,
           "count": _idx_bytes(np.zeros((6, 28, 28), np.uint8))}[damage]  # 6 images for 7 labels
    make_idx(tmp_path, gz, gz, replace={"train-images-idx3-ubyte": bad})
    with pytest.raises(DataError) as info:
        load_idx_dataset("fashion_mnist", tmp_path, download_ok=False, verify=False)
    assert "train-images-idx3-ubyte" in str(info.value)


def test_idx_damaged_gzip(tmp_path):
    make_idx(tmp_path, True, True)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte"):
        load_idx_dataset("fashion_mnist", tmp_path, download_ok=False, verify=False)


def test_real_fashion_mnist(tmp_path):
    assert FASHION_DIR.is_dir(), (
        f"{FASHION_DIR} is missing: install Debian's dataset-fashion-mnist package "
        "(apt-get install dataset-fashion-mnist; .ci/run does this).")
    x_tr, y_tr, x_te, y_te = load_idx_dataset("fashion_mnist", tmp_path, download_ok=False, verify=True)
    assert x_tr.shape == (60000, 1, 32, 32) and x_te.shape == (10000, 1, 32, 32)
    assert x_tr.dtype == np.uint8 and len(y_tr) == 60000 and len(y_te) == 10000
    assert set(np.unique(y_tr)) == set(range(10)) == set(np.unique(y_te))
    assert np.bincount(y_tr, minlength=10).tolist() == [6000] * 10
    assert np.bincount(y_te, minlength=10).tolist() == [1000] * 10
    # first labels of the official release: ankle boot, T-shirt, T-shirt, dress, ...
    assert y_tr[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert y_te[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    inner = x_tr[:, 0, 2:30, 2:30].astype(np.float64) / 255
    assert inner.mean() == pytest.approx(0.2860, abs=2e-4)
    assert inner.std() == pytest.approx(0.3530, abs=2e-4)
    assert not x_tr[:, :, :2].any() and not x_tr[:, :, 30:].any()
    assert not x_tr[:, :, :, :2].any() and not x_tr[:, :, :, 30:].any()


# --------------------------------------------------------------------------------------------------------------
# Augmentation
# --------------------------------------------------------------------------------------------------------------


def _find_crops(x: torch.Tensor, out: torch.Tensor, padding: int = 4):
    """For each output image, every (dy, dx, flipped) whose window of the zero-padded input equals it."""
    b, c, h, w = x.shape
    xp = F.pad(x, (padding, padding, padding, padding))
    windows = xp.unfold(2, h, 1).unfold(3, w, 1)  # (B, C, 2p+1, 2p+1, H, W)
    found = []
    for target in (out, out.flip(3)):
        eq = (windows == target[:, :, None, None]).all(dim=(1, 4, 5))  # (B, 2p+1, 2p+1)
        found.append(eq)
    return found


def test_random_crop_flip_windows_of_padded_input():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, 256, (512, 3, 32, 32), dtype=torch.uint8, generator=g)
    out = random_crop_flip(x, padding=4, flip=True, generator=torch.Generator().manual_seed(123))
    assert out.shape == x.shape and out.dtype == torch.uint8
    plain, flipped = _find_crops(x, out)
    matches = plain.sum(dim=(1, 2)) + flipped.sum(dim=(1, 2))
    assert (matches == 1).all(), "every output must be exactly one 32x32 window (maybe flipped) of the padded input"
    is_flipped = flipped.any(dim=(1, 2))
    offsets = (plain | flipped).nonzero()[:, 1:]  # (B, 2) = (dy, dx), in batch order
    assert 0.4 < is_flipped.float().mean() < 0.6
    for axis in range(2):
        counts = torch.bincount(offsets[:, axis], minlength=9)
        assert len(counts) == 9 and (counts > 20).all(), f"offsets 0..8 must all occur: {counts.tolist()}"
    # crops reach into the zero padding: some output rows/cols are entirely zero
    assert (out[offsets[:, 0] == 0][:, :, :4] == 0).all()


def test_random_crop_flip_options_and_determinism():
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    assert torch.equal(random_crop_flip(x, padding=0, flip=False), x)
    flips = random_crop_flip(x, padding=0, flip=True, generator=torch.Generator().manual_seed(1))
    same = (flips == x).flatten(1).all(1)
    mirrored = (flips == x.flip(3)).flatten(1).all(1)
    assert (same | mirrored).all() and same.any() and mirrored.any()
    a = random_crop_flip(x, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(999)  # the global RNG must not matter
    b = random_crop_flip(x, generator=torch.Generator().manual_seed(5))
    c = random_crop_flip(x, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_normalise_own_statistics():
    g = torch.Generator().manual_seed(0)
    x = torch.stack([torch.randint(0, 100, (256, 32, 32), generator=g),
                     torch.randint(100, 256, (256, 32, 32), generator=g),
                     torch.randint(0, 256, (256, 32, 32), generator=g)], dim=1).to(torch.uint8)
    xf = x.double() / 255
    mean, std = xf.mean(dim=(0, 2, 3)).float(), xf.std(dim=(0, 2, 3)).float()
    y = normalise(x, mean, std)
    assert y.dtype == torch.float32 and y.shape == x.shape
    assert torch.allclose(y.double().mean(dim=(0, 2, 3)), torch.zeros(3, dtype=torch.float64), atol=1e-4)
    assert torch.allclose(y.double().std(dim=(0, 2, 3)), torch.ones(3, dtype=torch.float64), atol=1e-4)
    assert torch.allclose(y[3, 1, 4, 5], (x[3, 1, 4, 5].float() / 255 - mean[1]) / std[1])
    assert x.dtype == torch.uint8  # input untouched


# --------------------------------------------------------------------------------------------------------------
# Data module
# --------------------------------------------------------------------------------------------------------------

N_TRAIN, N_TEST = 300, 40


@pytest.fixture
def indexed_arrays(monkeypatch):
    """Replace the dataset by images that carry their own index in pixels (0,0,0) and (0,0,1)."""
    def arrays(n):
        x = np.zeros((n, 3, 32, 32), np.uint8)
        x[:, 0, 0, 0] = np.arange(n) % 256
        x[:, 0, 0, 1] = np.arange(n) // 256
        x[:, 1:] = np.random.default_rng(n).integers(0, 256, (n, 2, 32, 32))
        return x, (np.arange(n) % 10).astype(np.int64)

    def fake_load(name, root=None, download=True, verify=True, synthetic=None):
        return (*arrays(N_TRAIN), *arrays(N_TEST))

    import horesnet.data.module as module

    monkeypatch.setattr(module, "load_arrays", fake_load)


def _ids(x: torch.Tensor) -> list[int]:
    return (x[:, 0, 0, 0].long() + 256 * x[:, 0, 0, 1].long()).tolist()


def _module(**kw):
    dm = ArrayDataModule(**{"name": "synthetic", "val_size": 60, "batch_size": 32, **kw})
    dm.setup("fit")
    return dm


def test_split_disjoint_fixed_size_and_seed_independent(indexed_arrays):
    dm = _module(seed=0)
    train, val, test = (_ids(dm.splits[s].x) for s in ("train", "val", "test"))
    assert len(val) == 60 and len(train) == N_TRAIN - 60 and len(test) == N_TEST
    assert not set(train) & set(val)
    assert sorted(train + val) == list(range(N_TRAIN))
    assert test == list(range(N_TEST))
    assert (dm.splits["train"].y.numpy() == np.array(train) % 10).all()
    assert (dm.splits["val"].y.numpy() == np.array(val) % 10).all()
    for seed in (1, 7):
        other = _module(seed=seed)
        assert _ids(other.splits["val"].x) == val, "the validation split must not depend on the run seed"
    assert set(_ids(_module(split_seed=1).splits["val"].x)) != set(val)
    limited = _module(limit_train=50, limit_val=10)
    assert _ids(limited.splits["train"].x) == train[:50]
    assert _ids(limited.splits["val"].x) == val[:10]
    # normalisation statistics: per-channel mean/std of the training split (independent computation)
    xs = dm.splits["train"].x.numpy().astype(np.float64) / 255
    np.testing.assert_allclose(dm.mean.numpy(), xs.mean(axis=(0, 2, 3)), atol=1e-5)
    np.testing.assert_allclose(dm.std.numpy(), xs.std(axis=(0, 2, 3), ddof=1), atol=1e-4)


def _epoch_order(dm, epoch: int) -> list[int]:
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(epoch)
    return [i for x, _ in loader for i in _ids(x)]


def test_train_order_depends_on_seed_and_epoch_only(indexed_arrays):
    dm_a, dm_b, dm_c = _module(seed=3), _module(seed=3), _module(seed=4)
    train = sorted(_ids(dm_a.splits["train"].x))
    torch.manual_seed(1)
    a0 = _epoch_order(dm_a, 0)
    torch.manual_seed(2)  # global RNG state must not matter
    b0 = _epoch_order(dm_b, 0)
    assert a0 == b0
    assert sorted(a0) == train, "an epoch visits every training image exactly once"
    a1 = _epoch_order(dm_a, 1)
    assert a1 != a0 and sorted(a1) == train
    assert _epoch_order(dm_b, 1) == a1
    assert _epoch_order(dm_a, 0) == a0, "epoch 0 again gives the same order"
    assert _epoch_order(dm_c, 0) != a0
    batches = list(dm_a.train_dataloader())
    assert [len(y) for _, y in batches] == [32] * 7 + [16]
    for x, y in batches:  # each batch: images with their own labels
        assert (y.numpy() == np.array(_ids(x)) % 10).all()
