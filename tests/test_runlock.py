"""The run-folder lock (horesnet/training/runlock.py) in process: a live holder is refused by name and its lock left
as it was; a dead holder's, a reused pid's and a half-written lock are taken over; another host's is refused with
the way out; only the holder releases it; DDP children and other ranks do not lock. Through the real command line:
tests/test_interrupt.py (a second fit refused while the first trains, a stale lock taken over on resume)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from horesnet.errors import ConfigError
from horesnet.training import runlock


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write(path, holder: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(holder))


def test_acquire_writes_this_process_and_release_removes_it(tmp_path):
    path = runlock.acquire(tmp_path / "run")  # the folder is created
    holder = json.loads(path.read_text())
    assert path.name == "fit.lock" and holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
    assert holder["start"] == runlock._proc_start(os.getpid())
    runlock.release(path)
    assert not path.exists()
    runlock.release(path)  # already gone: nothing to do


def test_a_live_holder_is_refused_by_name_and_its_lock_kept(tmp_path):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        path = tmp_path / "run" / "fit.lock"
        _write(path, {"pid": live.pid, "host": socket.gethostname(), "start": runlock._proc_start(live.pid),
                      "since": "2026-12-01T10:00:00", "command": "python -m horesnet.fit block=rk4"})
        before = path.read_bytes()
        with pytest.raises(ConfigError) as info:
            runlock.acquire(tmp_path / "run")
        text = str(info.value)
        assert f"run folder {tmp_path / 'run'} is being written by another horesnet.fit (pid {live.pid}" in text
        assert "block=rk4" in text and f"kill -INT {live.pid}" in text and "hydra.run.dir" in text
        assert path.read_bytes() == before
        runlock.release(path)  # not ours: left alone
        assert path.read_bytes() == before
    finally:
        live.kill()
        live.wait()


@pytest.mark.parametrize("holder", [
    lambda: {"pid": _dead_pid(), "host": socket.gethostname()},  # killed: the pid is gone
    lambda: {"pid": os.getppid(), "host": socket.gethostname(), "start": "1"},  # the pid now belongs to another
    lambda: {"pid": -5, "host": socket.gethostname()},
], ids=["dead-pid", "reused-pid", "bad-pid"])
def test_a_stale_lock_is_taken_over(tmp_path, capfd, holder):
    path = tmp_path / "fit.lock"
    _write(path, holder())
    assert runlock.acquire(tmp_path) == path
    assert json.loads(path.read_text())["pid"] == os.getpid()
    assert "took over the stale lock" in capfd.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.lock"], "the stale lock set aside is removed"
    runlock.release(path)


def test_a_half_written_lock_is_waited_for_then_taken_over(tmp_path):
    path = tmp_path / "fit.lock"
    path.write_text("")  # a writer killed between creating and writing it
    old = time.time() - 60
    os.utime(path, (old, old))
    assert runlock.acquire(tmp_path) == path and json.loads(path.read_text())["pid"] == os.getpid()
    runlock.release(path)


def test_another_hosts_lock_is_refused_with_the_way_out(tmp_path):
    path = tmp_path / "fit.lock"
    _write(path, {"pid": 12345, "host": "node-that-was-lost"})
    with pytest.raises(ConfigError) as info:
        runlock.acquire(tmp_path)
    assert "host node-that-was-lost" in str(info.value) and f"delete {path}" in str(info.value)
    assert json.loads(path.read_text())["host"] == "node-that-was-lost"


def test_a_lock_taken_over_by_another_process_is_not_released(tmp_path):
    path = runlock.acquire(tmp_path)
    _write(path, {"pid": os.getppid(), "host": socket.gethostname()})
    runlock.release(path)
    assert path.exists()


@pytest.mark.parametrize("env, writer", [({}, True), ({"LOCAL_RANK": "0", "RANK": "0"}, True),
                                         ({"LOCAL_RANK": "1"}, False), ({"RANK": "3"}, False),
                                         ({"SLURM_PROCID": "1"}, False), ({"NODE_RANK": "1"}, False)])
def test_only_the_writing_process_locks(monkeypatch, env, writer):
    for key in runlock.RANK_VARIABLES:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert runlock.writer_process() is writer
