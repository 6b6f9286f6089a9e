"""The machine a run trains on: its CPU model and the bf16 instructions it has, recorded per run folder so that a
run resumed on another CPU says so in its ``summary.json`` (speeds differ several-fold between CPU kinds)."""

from __future__ import annotations

import json
import platform
from datetime import datetime
from pathlib import Path

from .. import runs
from ..files import write_json_atomic

BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def _cpuinfo() -> tuple[str, set[str]]:
    """The model name and the instruction-set flags of the first CPU in ``/proc/cpuinfo`` (empty where absent)."""
    name, flags = "", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and not name:
                name = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return name, flags


def bf16_instructions() -> list[str] | None:
    """This CPU's bf16 instruction sets (``avx512_bf16``, ``amx_bf16``); None where the kernel does not say."""
    flags = _cpuinfo()[1]
    return [f for f in BF16_FLAGS if f in flags] if flags else None


def cpu_model() -> str:
    """The CPU's model name as the kernel reports it (``/proc/cpuinfo``), with its bf16 instruction sets."""
    name = _cpuinfo()[0] or platform.processor() or platform.machine() or "unknown"
    bf16 = bf16_instructions()
    return name if bf16 is None else f"{name} ({', '.join(bf16) or 'no bf16 instructions'})"


def bf16_warning(precision: str, device_type: str) -> str | None:
    """The start-up warning for bf16 training on a CPU without bf16 instructions (emulated: several times slower
    than fp32: 14 against 152 img/s for an RK4-32 on an AMD EPYC without AVX-512, README), else None."""
    if device_type != "cpu" or "bf16" not in precision or bf16_instructions() != []:
        return None
    return (f"horesnet.fit: warning: trainer.precision={precision} on a CPU without bf16 instructions "
            f"({cpu_model()}): bf16 is emulated here and trains several times slower than 32-true (about 10x "
            "measured on such a CPU). "
            "Drop trainer.precision=bf16-mixed (and channels_last=true) on this machine.")


def record_cpu(run_dir: Path) -> dict:
    """Append this start's CPU to ``run_dir/cpus.json``; return ``{cpu, cpus, cpu_changed}`` for the summary:
    the CPU now, every distinct CPU the run trained on (in order), and whether there was more than one."""
    path = runs.cpus_path(run_dir)  # one record per start of the run (fresh or resumed)
    try:
        starts = json.loads(path.read_text()) if path.is_file() else []
        starts = starts if isinstance(starts, list) else []
    except (OSError, ValueError):
        starts = []
    now = cpu_model()
    path.parent.mkdir(parents=True, exist_ok=True)
    starts.append({"cpu": now, "started": datetime.now().isoformat(timespec="seconds")})
    write_json_atomic(path, starts, indent=1)
    cpus = list(dict.fromkeys(s.get("cpu") for s in starts if isinstance(s, dict) and s.get("cpu")))
    return {"cpu": now, "cpus": cpus, "cpu_changed": len(cpus) > 1}
