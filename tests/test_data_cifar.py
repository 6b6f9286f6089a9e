"""Tests of horesnet.data's CIFAR pickle reader and its downloads.

Expected values come from the file format itself (Krizhevsky's CIFAR python batches: a pickled dict whose b'data'
is an N x 3072 uint8 array, 1024 red then 1024 green then 1024 blue values, each channel row-major). The test
archives are built here, byte by byte, in the original layout.
"""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest

from horesnet.data import DataError, check_available, load_cifar

from ._data_helpers import _fake_urlopen, _files

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
