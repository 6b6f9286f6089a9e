"""The converged study's command (experiments/converged.sh, docs/converged.md) on a pre-emptible machine: the plan's
order (phase a's three arms interleaved by seed first), each run's state read from its folder, and the lock that
keeps a second copy from starting while the first lives and lets a new one take over after a kill."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "experiments" / "converged.sh"


def _study(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    out = tmp_path / "study"
    full = {**os.environ, "PY": sys.executable, "RUNS": str(out / "runs"), "OUT": str(out), **env}
    return subprocess.run(["bash", str(SCRIPT), *args], env=full, capture_output=True, text=True, timeout=300)


def _finished(tmp_path: Path, name: str) -> None:
    run = tmp_path / "study" / "runs" / name
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"status": "finished"}, indent=2))


PHASE_A = [f"{arm}-d56-s{s}" for s in (0, 1, 2) for arm in ("euler", "rk4", "euler-h0.3333")]


def test_plan_runs_phase_a_first_interleaved_by_seed_and_reads_each_runs_state(tmp_path):
    _finished(tmp_path, "euler-d56-s0")
    partial = tmp_path / "study" / "runs" / "rk4-d56-s0" / "checkpoints"
    partial.mkdir(parents=True)
    (partial / "last.ckpt").write_bytes(b"")
    diverged = tmp_path / "study" / "runs" / "euler-h0.3333-d56-s0"
    diverged.mkdir()
    (diverged / "summary.json").write_text(json.dumps({"status": "diverged"}, indent=2))
    proc = _study(tmp_path, "plan")
    assert proc.returncode == 0, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines() if not line.startswith("d (")]
    assert [r[1] for r in rows[:9]] == PHASE_A
    assert [r[0] for r in rows[:9]] == ["a"] * 9
    assert [r[2] for r in rows[:3]] == ["done", "partial", "pending"]  # a diverged run is trained again
    assert rows[2][3:] == ["block=euler", "step=0.3333", "depth=56", "seed=0"]  # RK4-56's residual scale 1/3
    assert [r[1] for r in rows[9:11]] == ["midpoint-d56-s0", "euler-h0.5556-d56-s0"]  # phase b: 5/9
    assert [r[1] for r in rows[15:18]] == ["euler-d20-s0", "plain-d20-s0", "plain-d56-s0"]  # phase c
    assert not (tmp_path / "study" / "study.lock").exists()  # planning takes no lock


def test_a_live_lock_means_already_running_and_a_dead_one_is_taken_over(tmp_path):
    out = tmp_path / "study"
    out.mkdir()
    holder = subprocess.Popen(["bash", "-c", "exec -a converged.sh sleep 60"])
    try:
        (out / "study.lock").write_text(f"{holder.pid}\n")
        proc = _study(tmp_path, STOP_AFTER="a")
        assert proc.returncode == 0 and "already running" in proc.stderr, proc.stderr
        assert (out / "study.lock").read_text().strip() == str(holder.pid)
        assert not (out / "runs" / "rk4-d56-s0").exists()  # nothing trained
    finally:
        holder.kill()
        holder.wait()
    for name in PHASE_A:  # the whole phase is finished: a new start takes the dead lock over and trains nothing
        _finished(tmp_path, name)
    proc = _study(tmp_path, STOP_AFTER="a")
    assert proc.returncode == 0, proc.stderr
    assert f"taking over the lock of pid {holder.pid}" in proc.stderr
    assert "train " not in proc.stdout
    assert not (out / "study.lock").exists()  # released at exit
    for name in PHASE_A:
        assert json.loads((out / "runs" / name / "summary.json").read_text()) == {"status": "finished"}
