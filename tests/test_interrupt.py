"""A real ``python -m horesnet.fit`` interrupted mid-epoch by SIGINT and by SIGTERM exits 130 / 143 with the command
that continues it, leaves a resumable mid-epoch checkpoint, and, resumed with that very command (``resume=auto``),
ends bit for bit where an uninterrupted run of the same command ends (weights, validation and test metrics,
metrics.csv). A second ``fit`` into a folder a live process writes is refused by name; a stale lock is taken over.

The runs are tiny (depth 20, width 0.25, 480 synthetic images, batch 8: 60 steps per epoch, 2 epochs, stochastic
depth on so that the global RNG matters, every step logged so that the step of the interruption is one); the
signal is sent as soon as the step-5 checkpoint
(``trainer.checkpoint_every_n_steps=5``) exists, so it lands early in epoch 1 however slow the machine is.
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from ._cli_helpers import cli_env

ARGS = ["data=synthetic", "depth=20", "width=0.25", "logger=csv", "data.limit_train=480", "data.batch_size=8",
        "data.limit_val=32", "data.limit_test=32", "data.eval_batch_size=32", "trainer.max_epochs=2",
        "trainer.checkpoint_every_n_steps=5", "trainer.log_every_n_steps=1", "drop_path_rate=0.1", "resume=auto"]
STEPS_PER_EPOCH = 60
TIMING = ("images_per_sec",)


def start(args: list[str], cwd: Path, name: str, ignore_sigint: bool = False) -> tuple[subprocess.Popen, Path]:
    """``python -m horesnet.fit args`` in its own session, stdout/stderr into files ``cwd/name.{out,err}``.
    ``ignore_sigint``: started as a shell starts a background job (SIGINT ignored), as a batch script would."""
    out = cwd / name
    preexec = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None
    proc = subprocess.Popen([sys.executable, "-m", "horesnet.fit", *args], cwd=cwd, env=cli_env(),
                            stdin=subprocess.DEVNULL, stdout=open(f"{out}.out", "w"), stderr=open(f"{out}.err", "w"),
                            start_new_session=True, preexec_fn=preexec)
    return proc, out


def finish(proc: subprocess.Popen, out: Path, timeout: float = 300) -> dict:
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise AssertionError(f"{out.name} did not finish in {timeout} s") from None
    return {"rc": proc.returncode, "stdout": Path(f"{out}.out").read_text(), "stderr": Path(f"{out}.err").read_text()}


def run(args: list[str], cwd: Path, name: str) -> dict:
    return finish(*start(args, cwd, name))


def wait_for(path: Path, proc: subprocess.Popen, out: Path, timeout: float = 300) -> None:
    """Poll (no fixed sleep) until ``path`` exists; fail at once if the process ends first."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"{out.name} exited ({proc.returncode}) before {path.name} appeared:\n"
                                 f"{Path(f'{out}.err').read_text()[-3000:]}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"{path} did not appear within {timeout} s")
        time.sleep(0.02)


def dead_pid() -> int:
    """The pid of a process that has exited (a stale lock's holder)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def ckpt(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)


def metrics(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if not any(t in k for t in TIMING)} for row in csv.DictReader(f)]


def chain(base: Path, sig: int) -> dict:
    """Train, interrupt with ``sig`` once the step-5 checkpoint exists, then run the printed continue command."""
    run_dir = base / signal.Signals(sig).name
    args = [*ARGS, f"hydra.run.dir={run_dir}"] + (["trainer.enable_progress_bar=false"] if sig != signal.SIGINT
                                                   else [])
    proc, out = start(args, base, f"{run_dir.name}-interrupted", ignore_sigint=sig == signal.SIGINT)
    wait_for(run_dir / "checkpoints" / "last.ckpt", proc, out)
    os.kill(proc.pid, sig)
    interrupted = finish(proc, out)
    state = {"interrupted": interrupted, "run_dir": run_dir, "ckpt": ckpt(run_dir),
             "progress": json.loads((run_dir / "progress.json").read_text()) if (run_dir / "progress.json").is_file()
             else None, "summary_after_interrupt": (run_dir / "summary.json").exists(),
             "lock_after_interrupt": (run_dir / "fit.lock").exists()}
    line = next((ln for ln in interrupted["stdout"].splitlines() if ln.startswith("  continue with: ")), None)
    assert line, f"no continue command:\n{interrupted['stdout'][-3000:]}\n{interrupted['stderr'][-3000:]}"
    command = shlex.split(line.removeprefix("  continue with: "))
    assert command[:3] == ["python", "-m", "horesnet.fit"], command
    state["command"] = command
    if sig == signal.SIGTERM:  # a lock left by a process that is gone (kill -9): the next start takes it over
        (run_dir / "fit.lock").write_text(json.dumps({"pid": dead_pid(), "host": socket.gethostname()}))
    state["resumed"] = run(command[3:], base, f"{run_dir.name}-resumed")
    return state


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("interrupt")
    with ThreadPoolExecutor(2) as pool:  # the reference and the SIGTERM chain run while the SIGINT chain does
        reference = pool.submit(run, [*ARGS, "trainer.enable_progress_bar=false", f"hydra.run.dir={base / 'ref'}"],
                                base, "ref")
        sigterm = pool.submit(chain, base, signal.SIGTERM)
        chains = {signal.SIGINT: chain(base, signal.SIGINT), signal.SIGTERM: sigterm.result()}
        ref = reference.result()
    assert ref["rc"] == 0, ref["stderr"][-3000:]
    return {"base": base, "ref": base / "ref", **chains}


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_run_says_so_and_saves_a_mid_epoch_checkpoint(runs, sig, status):
    s = runs[sig]
    res, name = s["interrupted"], signal.Signals(sig).name
    assert res["rc"] == status, f"exit status {res['rc']}, expected {status}\n{res['stderr'][-3000:]}"
    assert "Traceback" not in res["stderr"], res["stderr"][-3000:]
    assert f"horesnet.fit: interrupted by {name}; saved a resumable checkpoint {s['run_dir']}" in res["stdout"]
    position = s["ckpt"]["horesnet"]["position"]
    assert position["mid_epoch"] and position["epoch"] == 0, position  # the signal came early in epoch 1
    assert 5 <= s["ckpt"]["global_step"] == position["batch"] < STEPS_PER_EPOCH
    assert f"in epoch 1/2 after batch {position['batch']}/{STEPS_PER_EPOCH}" in res["stdout"]
    assert s["progress"]["status"] == "interrupted" and s["progress"]["signal"] == name
    assert not s["summary_after_interrupt"], "an interrupted run has no summary.json"
    assert not s["lock_after_interrupt"], "the interrupted run released its lock"
    assert not list(s["run_dir"].rglob("*.tmp"))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_the_printed_command_resumes_bit_for_bit(runs, sig):
    s = runs[sig]
    assert s["command"][-1] == "resume=auto" and f"hydra.run.dir={s['run_dir']}" in s["command"]
    res = s["resumed"]
    assert res["rc"] == 0, res["stderr"][-3000:]
    batch = s["ckpt"]["horesnet"]["position"]["batch"]
    assert (f"resumed     {s['run_dir'] / 'checkpoints' / 'last.ckpt'} (in epoch 1/2 after batch "
            f"{batch}/{STEPS_PER_EPOCH}, step {batch})") in res["stdout"]
    if sig == signal.SIGTERM:
        assert "took over the stale lock" in res["stderr"]
    got, want = ckpt(s["run_dir"]), ckpt(runs["ref"])
    assert got["global_step"] == want["global_step"] == 2 * STEPS_PER_EPOCH
    assert got["state_dict"].keys() == want["state_dict"].keys()
    for key, value in want["state_dict"].items():
        assert torch.equal(got["state_dict"][key], value), f"{key} differs from the uninterrupted run"
    summary = json.loads((s["run_dir"] / "summary.json").read_text())
    ref = json.loads((runs["ref"] / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["val"] == ref["val"] and summary["test"] == ref["test"]
    # every logged value too: the interrupted epoch's mean training loss and accuracy cover all its batches
    assert metrics(s["run_dir"]) == metrics(runs["ref"])
    assert not (s["run_dir"] / "fit.lock").exists()


# --------------------------------------------------------------------------------------------------------------
# One writer per run folder
# --------------------------------------------------------------------------------------------------------------


def test_a_second_fit_into_a_live_run_folder_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    args = [*ARGS, "trainer.max_epochs=100", "trainer.enable_progress_bar=false", f"hydra.run.dir={run_dir}"]
    first, out = start(args, tmp_path, "first")
    try:
        wait_for(run_dir / "checkpoints" / "last.ckpt", first, out)  # training: the lock is held
        hydra = {p.name: p.read_bytes() for p in (run_dir / ".hydra").iterdir()}
        second = run(args, tmp_path, "second")
        assert first.poll() is None, "the first run should still be training"
        os.kill(first.pid, signal.SIGTERM)
        res = finish(first, out)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert second["rc"] == 2, second["stderr"][-3000:]
    err = second["stderr"]
    assert f"run folder {run_dir} is being written by another horesnet.fit (pid {first.pid}" in err, err[-3000:]
    assert "Traceback" not in err
    assert {p.name: p.read_bytes() for p in (run_dir / ".hydra").iterdir()} == hydra, "the refused run wrote .hydra/"
    assert "being written by another" not in (run_dir / "fit.log").read_text(), "the refused run wrote fit.log"
    assert res["rc"] == 143, res["stderr"][-3000:]
    assert not (run_dir / "fit.lock").exists()
