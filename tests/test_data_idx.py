"""Tests of horesnet.data's IDX reader (MNIST, Fashion-MNIST) and its downloads.

Expected values come from the file format itself (LeCun's IDX format: magic 0x00000803 / 0x00000801 then
big-endian dimensions) and from published properties of Fashion-MNIST (Xiao et al. 2017: 6000 training and 1000
test images per class, pixel mean 0.2860, std 0.3530). The test files are built here, byte by byte; where Debian's
Fashion-MNIST is not installed, a small stand-in in the same gzipped IDX format takes its place (_data_helpers.py).
"""

from __future__ import annotations

import gzip
from dataclasses import replace as dc_replace
from pathlib import Path

import numpy as np
import pytest

from horesnet.data import IDX, DataError, check_available, load_idx_dataset

from ._data_helpers import _fake_urlopen, _files, fashion_mnist_source
from ._data_helpers import idx_bytes as _idx_bytes

# --------------------------------------------------------------------------------------------------------------
# IDX
# --------------------------------------------------------------------------------------------------------------


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


def test_real_fashion_mnist(tmp_path, monkeypatch):
    """Debian's copy against the published facts (or, where it is not installed, the generated stand-in against
    the facts it was generated with), found in the system folder and checked against the listed md5s."""
    source = fashion_mnist_source(tmp_path / "src", monkeypatch)
    facts = source.facts
    n_train, n_test = facts["n_train"], facts["n_test"]
    x_tr, y_tr, x_te, y_te = load_idx_dataset("fashion_mnist", tmp_path, download_ok=False, verify=True)
    assert x_tr.shape == (n_train, 1, 32, 32) and x_te.shape == (n_test, 1, 32, 32)
    assert x_tr.dtype == np.uint8 and len(y_tr) == n_train and len(y_te) == n_test
    assert set(np.unique(y_tr)) == set(range(10)) == set(np.unique(y_te))
    assert np.bincount(y_tr, minlength=10).tolist() == [n_train // 10] * 10
    assert np.bincount(y_te, minlength=10).tolist() == [n_test // 10] * 10
    # first labels (of the official release: ankle boot, T-shirt, T-shirt, dress, ...)
    assert y_tr[:10].tolist() == facts["first_train"]
    assert y_te[:10].tolist() == facts["first_test"]
    inner = x_tr[:, 0, 2:30, 2:30].astype(np.float64) / 255
    assert inner.mean() == pytest.approx(facts["mean"], abs=2e-4)
    assert inner.std() == pytest.approx(facts["std"], abs=2e-4)
    assert not x_tr[:, :, :2].any() and not x_tr[:, :, 30:].any()
    assert not x_tr[:, :, :, :2].any() and not x_tr[:, :, :, 30:].any()


def test_check_available_idx_missing(tmp_path, monkeypatch):
    # whatever this machine has installed system-wide, the data root here is empty and no system copy is searched
    monkeypatch.setitem(IDX, "mnist", dc_replace(IDX["mnist"], system_dirs=()))
    with pytest.raises(DataError) as info:
        check_available("mnist", tmp_path, download=False)
    assert str(tmp_path) in str(info.value) and "train-images-idx3-ubyte" in str(info.value)


# --------------------------------------------------------------------------------------------------------------
# Downloads (the network is replaced by a fake urlopen)
# --------------------------------------------------------------------------------------------------------------


def test_fashion_mnist_download_accepts_every_listed_checksum(tmp_path, monkeypatch):
    """The reader lists two accepted md5s per Fashion-MNIST file (the official release and Debian's re-compressed
    copy). A download whose bytes match one of them must be accepted. Served here: Debian's files (or the generated
    stand-in, whose md5s are added to the listed ones)."""
    source = fashion_mnist_source(tmp_path / "src", monkeypatch)
    monkeypatch.setitem(IDX, "fashion_mnist", dc_replace(IDX["fashion_mnist"], system_dirs=()))
    assert all(len(accepted) >= 2 for accepted in IDX["fashion_mnist"].md5s.values())
    requested = _fake_urlopen(monkeypatch, lambda url: (source.folder / url.rsplit("/", 1)[-1]).read_bytes())
    root = tmp_path / "data"
    x_tr, y_tr, x_te, y_te = load_idx_dataset("fashion_mnist", root, download_ok=True, verify=True)
    assert len(requested) == 4 and all(u.startswith(IDX["fashion_mnist"].url) for u in requested)
    assert x_tr.shape == (source.facts["n_train"], 1, 32, 32) and x_te.shape == (source.facts["n_test"], 1, 32, 32)
    assert sorted(p.name for p in _files(root)) == sorted(p.name for p in source.folder.iterdir())
