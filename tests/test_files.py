"""horesnet.files: atomic writes leave the old file or the new one (never a part, never a temporary file), strict
JSON turns non-finite numbers into null, and the safe torch.load refuses code."""

from __future__ import annotations

import ast
import json
import math
import os
import stat
import sys
from pathlib import Path

import pytest
import torch

import horesnet
from horesnet.errors import ConfigError
from horesnet.files import atomic_open, json_safe, load_tensors, write_atomic, write_json_atomic


def test_write_atomic_text_and_bytes(tmp_path):
    write_atomic(tmp_path / "a.txt", "héllo\n")
    write_atomic(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo\n"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(path) as f:
        f.write("half of the new")
        raise RuntimeError("killed half-way")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_an_object_that_cannot_be_serialised_writes_nothing(tmp_path):
    with pytest.raises(TypeError):  # json.dumps raises (a tuple as a key) before any file is opened
        write_json_atomic(tmp_path / "new.json", {"ok": 1, (1, 2): 3})
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "old.json").write_text("{}")
    with pytest.raises(TypeError):
        write_json_atomic(tmp_path / "old.json", {(1, 2): 3})
    assert [p.name for p in tmp_path.iterdir()] == ["old.json"] and (tmp_path / "old.json").read_text() == "{}"


def test_the_temporary_file_is_checkable_before_the_rename(tmp_path):
    """``f.name`` is the temporary file (data/sources.py checks a download's md5 there before renaming it)."""
    with atomic_open(tmp_path / "x.bin", "wb", suffix=".part") as f:
        f.write(b"abc")
        f.flush()
        assert f.name.endswith(".part") and os.path.getsize(f.name) == 3
        assert not (tmp_path / "x.bin").exists()
    assert (tmp_path / "x.bin").read_bytes() == b"abc"


def test_json_safe_turns_non_finite_numbers_into_null_at_any_depth():
    obj = {"a": math.nan, "b": [1.5, math.inf, (-math.inf, 2)], "c": {"d": float("nan")}, "e": "nan", "f": True}
    assert json_safe(obj) == {"a": None, "b": [1.5, None, [None, 2]], "c": {"d": None}, "e": "nan", "f": True}


def test_write_json_atomic_is_strict_json(tmp_path):
    write_json_atomic(tmp_path / "s.json", {"x": math.nan, "y": [math.inf], "z": 1.0, "p": tmp_path})
    text = (tmp_path / "s.json").read_text()
    assert "NaN" not in text and "Infinity" not in text and not text.endswith("\n")
    assert json.loads(text) == {"x": None, "y": [None], "z": 1.0, "p": str(tmp_path)}
    assert text == json.dumps({"x": None, "y": [None], "z": 1.0, "p": str(tmp_path)}, indent=2)
    write_json_atomic(tmp_path / "t.json", [1], indent=1, newline=True)
    assert (tmp_path / "t.json").read_text() == "[\n 1\n]\n"


def test_load_tensors_reads_tensors(tmp_path):
    torch.save({"w": torch.ones(2), "meta": {"epoch": 3}}, tmp_path / "ok.pt")
    got = load_tensors(tmp_path / "ok.pt")
    assert torch.equal(got["w"], torch.ones(2)) and got["meta"] == {"epoch": 3}


class Payload:
    def __reduce__(self):
        return (print, ("code ran",))


def test_load_tensors_refuses_code_and_names_the_file(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"x": Payload()}, path)
    with pytest.raises(ConfigError, match="evil.pt was refused.*weights_only=True"):
        load_tensors(path)
    (tmp_path / "junk.ckpt").write_bytes(b"PK\x03\x04 a truncated zip")
    with pytest.raises(ConfigError, match="junk.ckpt is not a readable checkpoint"):
        load_tensors(tmp_path / "junk.ckpt", "checkpoint")
    with pytest.raises(ConfigError, match="weights file .*missing.pt' does not exist"):
        load_tensors(tmp_path / "missing.pt")


@pytest.mark.parametrize("module", ["files", "runs"])
def test_files_and_runs_import_nothing_heavy(module):
    """Only the standard library and horesnet's bottom layer at module level (torch inside ``load_tensors``)."""
    tree = ast.parse((Path(horesnet.__file__).parent / f"{module}.py").read_text())
    top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    names = {a.name.split(".")[0] for n in top if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in top if isinstance(n, ast.ImportFrom) and n.module and not n.level}
    assert names <= set(sys.stdlib_module_names) | {"__future__"}, names
    relative = {n.module for n in top if isinstance(n, ast.ImportFrom) and n.level}
    assert relative <= {"errors", "files"}, relative


def test_a_download_is_renamed_only_when_verified(tmp_path):
    """data/sources.download writes through atomic_open: a checksum mismatch leaves neither the file nor a part."""
    import hashlib

    from horesnet.data.sources import DataError, download

    src = tmp_path / "src.bin"
    src.write_bytes(b"payload")
    dest = tmp_path / "data" / "file.bin"
    with pytest.raises(DataError, match="md5 is not 0+; the download is corrupt"):
        download(src.as_uri(), dest, "0" * 32)
    assert list(dest.parent.iterdir()) == []
    good = hashlib.md5(b"payload", usedforsecurity=False).hexdigest()
    assert download(src.as_uri(), dest, good) == dest and dest.read_bytes() == b"payload"
    assert [p.name for p in dest.parent.iterdir()] == ["file.bin"]
    with pytest.raises(DataError, match="could not download"):
        download((tmp_path / "absent").as_uri(), tmp_path / "data" / "other.bin", None)
    assert [p.name for p in dest.parent.iterdir()] == ["file.bin"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_an_atomic_write_gets_the_mode_of_a_plain_write(tmp_path, umask):
    """mkstemp creates 0600 files: without the fix a run's summary.json was unreadable to the user's group. The
    umask in force at the write counts (set here after horesnet.files was imported)."""
    before = os.umask(umask)
    try:
        plain = tmp_path / "plain.json"
        plain.write_text("{}")
        write_json_atomic(tmp_path / "atomic.json", {})
        write_atomic(tmp_path / "atomic.bin", b"x")
    finally:
        os.umask(before)
    mode = stat.S_IMODE(plain.stat().st_mode)
    assert mode == 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "atomic.json").stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "atomic.bin").stat().st_mode) == mode
