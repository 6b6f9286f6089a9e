"""Running a horesnet command line in a subprocess, as a user would, for the command-line tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import horesnet


def cli_env(home: Path | None = None) -> dict:
    """The environment of a user with no W&B key and no data override; ``home`` hides ~/.netrc (W&B must go
    offline by itself, never prompt)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("WANDB_API_KEY", "WANDB_MODE", "HYDRA_FULL_ERROR", "HORESNET_DATA")}
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(Path(horesnet.__file__).parent.parent), env.get("PYTHONPATH", "")])
    if home is not None:
        env["HOME"] = str(home)
    return env


def run_cli(module: str, args: list[str], cwd: Path, env: dict, timeout: float) -> dict:
    """Run ``python -m module args`` in its own process group (killed whole on timeout); stdin closed."""
    proc = subprocess.Popen([sys.executable, "-m", module, *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        return {"rc": proc.returncode, "stdout": out, "stderr": err, "timed_out": False}
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return {"rc": None, "stdout": out, "stderr": err, "timed_out": True}


class Evil:
    """Unpickling this runs ``touch MARKER``: what a crafted checkpoint would do with weights_only=False."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))
