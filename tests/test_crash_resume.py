"""kill -9 at four points of a run, each time followed by ``resume=auto``, ends with the weights of an uninterrupted
run bit for bit and a complete ``summary.json``; orphaned temporary checkpoint files are cleaned at the next start.

The chain (one run folder, 3 epochs of 2 steps):
  1. killed inside training step 4 (epoch 2)                       -> last.ckpt is epoch 1
  2. resumed, killed inside its first checkpoint write (temp file complete, not renamed) -> an orphaned *.tmp
  3. resumed (the orphan is deleted), killed after the final checkpoint, before the test
  4. resumed: nothing left to train; validates, tests, writes the summary
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from ._cli_helpers import cli_env

LAUNCHER = Path(__file__).parent / "_crash_launcher.py"
ARGS = ["data=synthetic", "depth=8", "width=0.25", "logger=csv", "trainer.max_epochs=3", "data.limit_train=64",
        "data.batch_size=32", "data.limit_val=32", "data.limit_test=32", "trainer.enable_progress_bar=false",
        "resume=auto"]


def launch(run_dir: Path, crash: str | None) -> subprocess.CompletedProcess:
    env = cli_env()
    if crash:
        env["CRASH_AT"] = crash
    return subprocess.run([sys.executable, str(LAUNCHER), *ARGS, f"hydra.run.dir={run_dir}"], cwd=run_dir.parent,
                          env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


def weights(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    base = tmp_path_factory.mktemp("crash")
    with ThreadPoolExecutor(1) as pool:
        reference = pool.submit(launch, base / "reference", None)
        run, states = base / "run", {}
        for point in ("step:4", "write:1", "before_test", None):
            result = launch(run, point)
            ckpt = run / "checkpoints"
            states[point] = {"rc": result.returncode, "stderr": result.stderr,
                             "orphans": sorted(p.name for p in ckpt.glob("*.tmp")) if ckpt.is_dir() else [],
                             "step": weights(run)["global_step"] if (ckpt / "last.ckpt").is_file() else None,
                             "summary": (run / "summary.json").is_file()}
        ref = reference.result()
    assert ref.returncode == 0, ref.stderr[-3000:]
    return {"base": base, "run": run, "states": states}


def test_each_crash_point_is_reached(chain):
    s = chain["states"]
    for point in ("step:4", "write:1", "before_test"):
        assert s[point]["rc"] == -9, f"{point}: expected a SIGKILL, got {s[point]['rc']}\n{s[point]['stderr'][-2000:]}"
        assert not s[point]["summary"], f"{point}: a killed run must not have a summary"
    assert s["step:4"]["step"] == 2, "killed in epoch 2: last.ckpt is the end of epoch 1 (2 steps)"
    assert s["write:1"]["step"] == 2, "the interrupted write must leave the old last.ckpt whole"
    assert s["write:1"]["orphans"], "the kill inside the write should have left its temporary file"
    assert s["before_test"]["orphans"] == [], "the next start cleans orphaned temporary files"
    assert s["before_test"]["step"] == 6
    assert s[None]["rc"] == 0, s[None]["stderr"][-3000:]


def test_final_weights_equal_the_uninterrupted_run_bitwise(chain):
    got, want = weights(chain["run"]), weights(chain["base"] / "reference")
    assert got["global_step"] == want["global_step"] == 6
    assert got["state_dict"].keys() == want["state_dict"].keys()
    for key, value in want["state_dict"].items():
        assert torch.equal(got["state_dict"][key], value), f"{key} differs from the uninterrupted run"


def test_summary_after_the_crashes_is_complete(chain):
    got = json.loads((chain["run"] / "summary.json").read_text())
    want = json.loads((chain["base"] / "reference" / "summary.json").read_text())
    assert got["status"] == "finished" and got["epochs_done"] == 3
    assert got["val"] and got["val"].keys() == want["val"].keys()
    assert got["val"] == want["val"], "validation of the same weights on the same images"
    assert got["test"] == want["test"]
    assert got["train_time_s"] > 0
    assert got["wall_time_s"] >= got["train_time_s"], "wall time covers every slice, not only the last one"
    assert not list(chain["run"].rglob("*.tmp"))
    assert os.path.getsize(chain["run"] / "checkpoints" / "last.ckpt") > 0
