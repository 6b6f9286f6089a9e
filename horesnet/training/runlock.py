"""One writer per run folder: ``<run folder>/fit.lock`` names the process that writes it (pid, host, start time),
created with ``O_CREAT | O_EXCL``; a stale lock (its pid gone or reused on this host) is taken over, another host's
is refused with the command that clears it (docs/reliability.md, section 7)."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from datetime import datetime
from pathlib import Path

from .. import runs
from ..errors import ConfigError

RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")


def writer_process() -> bool:
    """Whether this process writes the run folder: not a DDP child, not another node's or task's process."""
    return all(os.environ.get(k, "0").strip() in ("", "0") for k in RANK_VARIABLES)


def _proc_start(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (Linux), to tell a reused pid from its first owner."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _read(path: Path) -> dict | None:
    try:
        holder = json.loads(path.read_text())
        return holder if isinstance(holder, dict) else None
    except (OSError, ValueError):
        return None


def alive(holder: dict) -> bool | None:
    """Whether the holder still runs: True/False on this host, None (cannot tell) for another host's."""
    if holder.get("host") != socket.gethostname():
        return None
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's live process
    start = _proc_start(pid)
    return not (holder.get("start") and start and holder["start"] != start)


def _set_aside(path: Path, holder: dict | None) -> None:
    """Remove a stale lock without removing a fresh one that another starter made in the meantime: move it aside
    (atomic), and put it back if it is no longer the stale one."""
    aside = path.with_name(f"{runs.LOCK}.stale.{os.getpid()}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return  # another starter removed it first
    if _read(aside) != holder:
        try:
            os.link(aside, path)
        except FileExistsError:
            pass
    aside.unlink(missing_ok=True)


def _refusal(run_dir: Path, path: Path, holder: dict) -> ConfigError:
    who = f"pid {holder.get('pid')}" + (f", running since {holder['since']}" if holder.get("since") else "")
    what = f" ({holder['command']})" if holder.get("command") else ""
    if alive(holder) is None:
        return ConfigError(
            f"run folder {run_dir} is locked by a horesnet.fit on host {holder.get('host')} ({who}){what}; two runs "
            "in one folder would overwrite each other's checkpoints and summary. This host cannot tell whether "
            f"that process still runs: if it does not (its machine was lost), delete {path} and start again; "
            "otherwise choose another folder (hydra.run.dir=...).")
    return ConfigError(
        f"run folder {run_dir} is being written by another horesnet.fit ({who}){what}; two runs in one folder "
        "would overwrite each other's checkpoints and summary. Wait for it to finish, stop it "
        f"(kill -INT {holder.get('pid')} saves a checkpoint to resume from), or choose another folder "
        "(hydra.run.dir=...).")


def acquire(run_dir: Path) -> Path:
    """Create ``run_dir`` (if needed) and its lock; ConfigError (exit status 2) if a live process holds it."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = runs.lock_path(run_dir)
    for _ in range(50):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = _read(path)
            if holder is None:  # being written right now, or its writer died between creating and writing it
                try:
                    young = time.time() - path.stat().st_mtime < 5
                except FileNotFoundError:
                    continue
                if young:
                    time.sleep(0.1)
                    continue
            elif alive(holder) is not False:
                raise _refusal(run_dir, path, holder) from None
            _set_aside(path, holder)
            print(f"horesnet.fit: took over the stale lock {path} (pid {(holder or {}).get('pid')} no longer runs)",
                  file=sys.stderr, flush=True)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump({"pid": os.getpid(), "host": socket.gethostname(), "start": _proc_start(os.getpid()),
                       "since": datetime.now().isoformat(timespec="seconds"), "command": " ".join(sys.argv)[:400]}, f)
            f.flush()
            os.fsync(f.fileno())
        return path
    raise ConfigError(f"could not lock run folder {run_dir}: {path} keeps changing (other horesnet.fit processes "
                      "starting there?); start again, or choose another folder (hydra.run.dir=...).")


def release(path: Path | None) -> None:
    """Remove the lock if this process holds it (a lock taken over by another process is left alone)."""
    if path is None:
        return
    holder = _read(Path(path))
    if holder is not None and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
        Path(path).unlink(missing_ok=True)
