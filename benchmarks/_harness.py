"""The one way every benchmark measures: single timed steps (device-synchronised ``perf_counter``), a
CPU-interference filter, interleaved rotated rounds, paired ratios and a JSON report with the environment
(docs/benchmarks_method.md).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
MB = 1 / 2**20


# ----------------------------------------------------------------------------------------------- environment


def git_commit() -> dict:
    def git(*a):
        return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(device: torch.device) -> dict:
    return {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "torch": torch.__version__,
            "python": platform.python_version(), "device": str(device), "device_name": device_name(device),
            "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(), "git": git_commit()}


def add_common_args(ap) -> None:
    """``--quick``, ``--device``, ``--threads`` and ``--out``: the options every benchmark entry point has."""
    ap.add_argument("--quick", action="store_true", help="a smoke run (small sizes, 1 round)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", help="JSON path")


def pick_device(name: str) -> torch.device:
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cpu_peak_bytes(fn: Callable[[], object]) -> int | None:
    """Peak of the bytes allocated on the CPU while ``fn()`` runs, above what was allocated when it started: the
    running sum of the profiler's memory events (every allocation and free of the CPU allocator, in time order).
    Counts everything a step holds at its worst moment, including what a checkpoint keeps out of autograd's sight
    and the activations a recomputation rebuilds. None if this torch's profiler gives no memory events."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    try:
        events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                        if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU)
    except AttributeError:
        return None
    if not events:
        return None
    current = peak = 0
    for _, nbytes in events:
        current += nbytes
        peak = max(peak, current)
    return peak


def alternating_pairs(run_a: Callable[[], object], run_b: Callable[[], object], steps: int) -> list[tuple]:
    """``steps`` adjacent timings ``(run_a(), run_b())``, the order alternating (a first on even steps) so that a drift
    in the machine's speed favours neither side."""
    pairs = []
    for k in range(steps):
        if k % 2 == 0:
            ra = run_a()
            pairs.append((ra, run_b()))
        else:
            rb = run_b()
            pairs.append((run_a(), rb))
    return pairs


def write_json(report: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}", flush=True)
    return path


def save_report(report: dict, out: str | None, quick: bool) -> Path:
    """``out``, or ``benchmarks/results/<benchmark>-<device type>[-quick].json``."""
    tag = report["device"].split(":")[0] + ("-quick" if quick else "")
    return write_json(report, Path(out) if out else RESULTS / f"{report['benchmark']}-{tag}.json")


# ----------------------------------------------------------------------------------------------- interference


def _cpu_stat() -> tuple[float, float] | None:
    """(busy, steal) CPU seconds of the whole machine since boot, from /proc/stat (None off Linux)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq) / tick, steal / tick


class CpuWatch:
    """CPUs' worth of time used by *other* processes (plus hypervisor steal) over a window; 0 = quiet."""

    SLACK_S = 2 * (os.cpu_count() or 1) / os.sysconf("SC_CLK_TCK")  # tick rounding of /proc/stat

    def __enter__(self):
        self.stat, self.cpu, self.wall = _cpu_stat(), time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu
        end = _cpu_stat()
        self.load = None
        if self.stat is not None and end is not None:
            other = max(0.0, end[0] - self.stat[0] - self.cpu) + end[1] - self.stat[1]
            self.load = max(0.0, other - self.SLACK_S) / self.wall
        return False


def wait_for_quiet(max_wait: float, threshold: float) -> float:
    """Sleep in 1 s windows until other processes use < ``threshold`` CPUs (at most ``max_wait`` s)."""
    waited = 0.0
    while waited < max_wait:
        with CpuWatch() as w:
            time.sleep(1.0)
        waited += w.wall
        if w.load is None or w.load < threshold:
            break
    return waited


# ----------------------------------------------------------------------------------------------- timing


class Stepper:
    """One callable timed one call at a time: the device synchronised, ``time.perf_counter`` around the call and a
    second synchronisation (on CUDA the time includes all the work the call queued). ``settle`` untimed calls of the
    same callable come right before each timed one, so a timed training step follows a step of the same model, as
    in training. Each step also records the interference. Threads: the caller's ``torch.set_num_threads``."""

    def __init__(self, fn: Callable[[], object], device: torch.device, settle: int = 1):
        self.fn, self.device, self.settle = fn, device, settle

    def step(self, other_cpu_max: float) -> dict:
        for _ in range(self.settle):
            self.fn()
        sync(self.device)
        with CpuWatch() as w:
            start = time.perf_counter()
            self.fn()
            sync(self.device)
            s = time.perf_counter() - start
        return {"s": s, "other_cpus": w.load, "disturbed": w.load is not None and w.load > other_cpu_max}


def interleave(steppers: dict[str, Stepper], rounds: int, steps: int, warmup: int, extra: int,
               other_cpu_max: float, quiet_wait: float, log=print) -> dict[str, list[list[dict]]]:
    """``rounds`` rounds, order rotated each round; in a round ``warmup`` untimed then ``steps`` timed passes,
    one step of every stepper per pass, plus up to ``extra`` passes for steppers that lost steps to interference.
    After a disturbed step the run waits (up to ``quiet_wait`` s, 10x that in all) for a quiet machine.
    Returns per stepper the per-round lists of step records."""
    names = list(steppers)
    out: dict[str, list[list[dict]]] = {n: [] for n in names}
    budget = [10 * quiet_wait]

    def wait():
        budget[0] -= wait_for_quiet(min(quiet_wait, max(budget[0], 0.0)), other_cpu_max)

    for rnd in range(rounds):
        order = names[rnd % len(names):] + names[:rnd % len(names)]
        wait()
        recs = {n: [] for n in order}
        for _ in range(warmup):
            for n in order:
                steppers[n].fn()
        for k in range(steps + extra):
            todo = [n for n in order if k < steps or sum(not r["disturbed"] for r in recs[n]) < steps]
            if not todo:
                break
            for n in todo:
                recs[n].append(r := steppers[n].step(other_cpu_max))
                if r["disturbed"]:
                    wait()
        for n in order:
            out[n].append(recs[n])
        log(f"round {rnd + 1}/{rounds}: " + ", ".join(
            f"{n} {statistics.median(r['s'] for r in recs[n]) * 1e3:.0f} ms" for n in order), flush=True)
    return out


def compare(steppers: dict[str, Stepper], rounds: int, steps: int, warmup: int, quick: bool) -> dict[str, dict]:
    """Interleave a few steppers with the default filter; per stepper its summary and its rounds (for the JSON)."""
    timed = interleave(steppers, rounds, steps, warmup, max(1, steps // 2), 0.25, 3.0 if quick else 30.0)
    return {name: {**summarise(r), "rounds": r} for name, r in timed.items()}


def summarise(rounds: list[list[dict]]) -> dict:
    """Median over the clean steps of all rounds (over all steps when fewer than max(3, 1/4) are clean)."""
    every = [r for rnd in rounds for r in rnd]
    clean = [r["s"] for r in every if not r["disturbed"]]
    enough = len(clean) >= max(3, len(every) // 4) or len(clean) == len(every)
    use = clean if enough and clean else [r["s"] for r in every]
    return {"median_s": statistics.median(use), "clean_steps": len(clean), "steps": len(every),
            "all_steps_used": not (enough and clean) and len(clean) != len(every)}


def paired_ratio(rounds: list[list[dict]], ref_rounds: list[list[dict]]) -> float | None:
    """Median of step-by-step ratios: the k-th step of a round against the reference's k-th (both clean)."""
    ratios = [a["s"] / b["s"] for ra, rb in zip(rounds, ref_rounds, strict=True) for a, b in zip(ra, rb, strict=False)
              if not a["disturbed"] and not b["disturbed"]]
    return statistics.median(ratios) if ratios else None


def fmt(v, spec: str = ".3f") -> str:
    return "–" if v is None else format(v, spec)


def verdict(value, target, at_most: bool = True) -> bool | None:
    if value is None or target is None:
        return None
    return value <= target if at_most else value >= target
