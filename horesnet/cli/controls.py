"""Matched Euler controls added to a sweep by ``scale_controls=true`` (docs/design.md, "Fair comparisons").

For every member whose residual scale differs from 1 (a standard ResNet's) by more than 10%, the control is the
same command line with ``block=euler`` and ``step`` = the member's residual scale (``inner``, ``tied`` and
``entry`` back at their defaults): an Euler network carrying the same residual signal per unit. Controls already in
the sweep are not added twice. They run after the sweep, as one more sweep per control, into the same sweep folder;
the sweep's own ``multirun.yaml`` is kept, each control sweep's record is ``multirun.control<N>.yaml`` beside it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ..comparison.variants import CONTROL_RESET, SCALE_TOLERANCE, control_overrides, control_step
from .preflight import Member


def control_sweeps(members: list[Member]) -> list[list[str]]:
    """The override lists (each a ``-m`` sweep over the members' seeds) of the Euler controls the checked sweep
    ``members`` lacks (their configs and residual scales are the checks' own: nothing is composed or built again)."""
    present, wanted = set(), {}
    for member in members:
        cfg = member.cfg
        rest = tuple(o for o in member.overrides if o.partition("=")[0].lstrip("+~") not in CONTROL_RESET)
        present.add((rest, cfg.block, float(cfg.step), cfg.inner, bool(cfg.tied)))
        if member.scale is None or cfg.get("layout") == "macaron":  # no such control
            continue
        if abs(member.scale - 1.0) <= SCALE_TOLERANCE:
            continue
        step = control_step(member.scale)
        wanted.setdefault((rest, step), set()).add(int(cfg.seed))
    sweeps = []
    for (rest, step), seeds in wanted.items():
        if (rest, "euler", step, None, False) in present:
            continue
        sweeps.append([*control_overrides(list(rest), step, ",".join(map(str, sorted(seeds)))),
                       "scale_controls=false"])
    return sweeps


def run_controls(sweeps: list[list[str]], sweep_dir: str) -> int:
    """Run each control sweep (``python -m horesnet.fit -m ...``) into ``sweep_dir``; the worst exit status. Hydra
    writes every sweep's record to ``multirun.yaml``: the sweep's own is put back after each control sweep, whose
    record moves to ``multirun.control<N>.yaml``."""
    status = 0
    record = Path(sweep_dir) / "multirun.yaml"
    sweeps_record = record.read_bytes() if record.exists() else None
    for number, overrides in enumerate(sweeps, 1):
        print(f"horesnet.fit: scale_controls: training the matched Euler control {' '.join(overrides)}",
              file=sys.stderr)
        cmd = [sys.executable, "-m", "horesnet.fit", "-m", *overrides, f"hydra.sweep.dir={sweep_dir}"]
        status = max(status, subprocess.run(cmd, check=False).returncode)
        if sweeps_record is not None and record.exists():
            record.replace(record.with_name(f"multirun.control{number}.yaml"))
            record.write_bytes(sweeps_record)
    return status
