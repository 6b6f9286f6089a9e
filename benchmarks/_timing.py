"""Step timing for the throughput benchmark: CPU-interference watch, per-cell bench, interleaved rounds, profiler."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _variants import NUM_CLASSES, PRECISIONS, make_model, sync

# ----------------------------------------------------------------------------------------------- CPU interference


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
    """CPU seconds used by other processes (plus steal) over a window, in CPUs' worth (0 = quiet)."""

    # /proc/stat counts in ticks per CPU: allow two ticks per CPU of rounding before calling a window busy
    SLACK_S = 2 * (os.cpu_count() or 1) / os.sysconf("SC_CLK_TCK")

    def __enter__(self):
        self.stat, self.cpu, self.wall = _cpu_stat(), time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu
        end = _cpu_stat()
        if self.stat is None or end is None:
            self.other = self.steal = None
        else:
            self.other = max(0.0, end[0] - self.stat[0] - self.cpu)
            self.steal = end[1] - self.stat[1]
        return False

    def load(self) -> float | None:
        """Other processes' CPU use (plus steal) over the window, beyond tick rounding, in CPUs."""
        if self.other is None:
            return None
        return max(0.0, self.other + self.steal - self.SLACK_S) / self.wall


def wait_for_quiet(max_wait: float, threshold: float) -> float:
    """Sleep in 1 s windows until other processes use < ``threshold`` CPUs (at most ``max_wait`` s)."""
    waited = 0.0
    while waited < max_wait:
        with CpuWatch() as w:
            time.sleep(1.0)
        waited += w.wall
        if w.load() is None or w.load() < threshold:
            break
    return waited


# ----------------------------------------------------------------------------------------------- timing


class Bench:
    """One variant at one precision: model, SGD optimiser and a fixed random batch."""

    def __init__(self, variant: str, precision: str, batch: int, device: torch.device, seed: int = 0):
        torch.manual_seed(seed)
        self.variant, self.precision, self.device = variant, precision, device
        self.dtype, channels_last = PRECISIONS[precision]
        self.model = make_model(variant).to(device)
        x = torch.randn(batch, 3, 32, 32, device=device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
            x = x.contiguous(memory_format=torch.channels_last)
        self.x = x
        self.y = torch.randint(0, NUM_CLASSES, (batch,), device=device)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None)

    def forward_loss(self):
        with self.autocast():
            return F.cross_entropy(self.model(self.x), self.y)

    def train_step(self) -> None:
        self.model.train()
        self.opt.zero_grad(set_to_none=True)
        loss = self.forward_loss()
        loss.backward()
        self.opt.step()

    def eval_step(self) -> None:
        self.model.eval()
        with torch.no_grad(), self.autocast():
            self.model(self.x)

    def timed(self, fn, warmup: int, steps: int, other_cpu_max: float, extra: int = 0, on_disturbed=None
              ) -> list[dict]:
        """``steps`` timed calls after ``warmup`` calls: per step its seconds and interference indicators.

        After a disturbed step ``on_disturbed()`` is called (e.g. to wait for quiet) and up to ``extra`` more
        steps are timed so that ``steps`` clean ones are collected where possible.
        """
        for _ in range(warmup):
            fn()
        sync(self.device)
        records = []
        while sum(not r["disturbed"] for r in records) < steps and len(records) < steps + extra:
            with CpuWatch() as w:
                fn()
                sync(self.device)
            load = w.load()
            records.append({"s": w.wall, "cpu_per_wall": w.cpu / w.wall, "other_cpus": load,
                            "disturbed": load is not None and load > other_cpu_max})
            if records[-1]["disturbed"] and on_disturbed is not None:
                on_disturbed()
        return records


def step_time(rounds: list[list[dict]]) -> tuple[float, int, int]:
    """Median step time over clean steps of all rounds (all steps if fewer than a quarter / 3 are clean)."""
    every = [r for rnd in rounds for r in rnd]
    clean = [r["s"] for r in every if not r["disturbed"]]
    use = clean if len(clean) >= max(3, len(every) // 4) or len(clean) == len(every) else [r["s"] for r in every]
    return statistics.median(use), len(clean), len(every)


def time_cells(cells: list[tuple[str, str]], args, device: torch.device) -> tuple[dict, list[dict], float]:
    """Time every cell (variant, precision) over ``--rounds`` interleaved rounds.

    Returns the raw per-cell records (``train``/``eval`` steps per round and ``quiet_wait_s``), the per-round
    load averages and the wall time of the timed rounds.
    """
    benches = {c: Bench(*c, args.batch, device) for c in cells}
    for b in benches.values():  # one-off warm-up of every cell (allocator growth, oneDNN/cuDNN primitives)
        b.timed(b.train_step, args.warmup, 0, args.other_cpu_max)
        b.timed(b.eval_step, args.warmup, 0, args.other_cpu_max)
    raw = {c: {"train": [], "eval": [], "quiet_wait_s": []} for c in cells}
    rounds_info = []
    quiet_budget = [10 * args.quiet_wait]  # never wait more than this in all

    def wait() -> float:
        waited = wait_for_quiet(min(args.quiet_wait, quiet_budget[0]), args.other_cpu_max)
        quiet_budget[0] -= waited
        return waited

    def one(b: Bench, kind: str, warmup: int, steps: int, extra: int = 0) -> list[dict]:
        fn = b.train_step if kind == "train" else b.eval_step
        return b.timed(fn, warmup, steps, args.other_cpu_max, extra, wait)

    def interleaved(order, kind: str) -> dict:
        """Warm-up every cell, then time one step of each cell in turn, ``--steps`` passes (+ extra passes
        for cells that lost steps to interference)."""
        recs = {c: [] for c in order}
        for c in order:
            one(benches[c], kind, args.warmup, 0)
        for k in range(args.steps + args.extra_steps):
            todo = [c for c in order
                    if k < args.steps or sum(not r["disturbed"] for r in recs[c]) < args.steps]
            if not todo:
                break
            for c in todo:
                recs[c] += one(benches[c], kind, 0, 1)
        return recs

    t_timing = time.perf_counter()
    for rnd in range(args.rounds):
        load0 = os.getloadavg()
        order = cells[rnd % len(cells):] + cells[:rnd % len(cells)]  # rotate so no cell always runs first
        if args.interleave == "step":
            waited = wait()
            tr_all, ev_all = interleaved(order, "train"), interleaved(order, "eval")
        for c in order:
            if args.interleave == "step":
                raw[c]["quiet_wait_s"].append(waited if c == order[0] else 0.0)
                tr, ev = tr_all[c], ev_all[c]
            else:
                raw[c]["quiet_wait_s"].append(wait())
                tr = one(benches[c], "train", args.warmup, args.steps, args.extra_steps)
                ev = one(benches[c], "eval", args.warmup, args.steps, args.extra_steps)
            raw[c]["train"].append(tr)
            raw[c]["eval"].append(ev)
            bad = sum(r["disturbed"] for r in tr + ev)
            print(f"round {rnd + 1}/{args.rounds} {c[0]:>10} {c[1]:>6}: train "
                  f"{statistics.median(r['s'] for r in tr) * 1e3:8.1f} ms  eval "
                  f"{statistics.median(r['s'] for r in ev) * 1e3:8.1f} ms  disturbed steps {bad}/{len(tr + ev)}"
                  f"  load {os.getloadavg()[0]:.2f}", flush=True)
        rounds_info.append({"round": rnd + 1, "loadavg_start": load0, "loadavg_end": os.getloadavg()})
    timing_s = time.perf_counter() - t_timing
    benches.clear()  # free the models before profiling
    return raw, rounds_info, timing_s


# ----------------------------------------------------------------------------------------------- profile


PROFILE_GROUPS = (  # (group, substrings of aten op names), first match wins
    ("conv", ("conv",)),
    ("batch_norm", ("batch_norm",)),
    ("relu", ("relu", "threshold")),
    ("add/mul (skip, scheme combinations, grads)", ("aten::add", "aten::mul", "aten::sum", "aten::div")),
    ("optimizer", ("_foreach", "sgd")),
    ("copy/format", ("copy", "to_dense", "contiguous", "clone", "_to_copy", "reorder", "empty")),
)


def profile(bench: Bench, steps: int, path: Path) -> dict:
    """torch.profiler over ``steps`` training steps: self time per op group and the top ops, written to ``path``."""
    from torch import profiler

    activities = [profiler.ProfilerActivity.CPU]
    cuda = bench.device.type == "cuda"
    if cuda:
        activities.append(profiler.ProfilerActivity.CUDA)
    for _ in range(2):
        bench.train_step()
    with profiler.profile(activities=activities) as prof:
        for _ in range(steps):
            bench.train_step()
        sync(bench.device)
    averages = prof.key_averages()
    attr = "self_device_time_total" if cuda else "self_cpu_time_total"
    groups: dict[str, list[float]] = {}
    for e in averages:
        t = getattr(e, attr, 0) or 0
        name = e.key.lower()
        group = next((g for g, keys in PROFILE_GROUPS if any(k in name for k in keys)), "other")
        stat = groups.setdefault(group, [0.0, 0])
        stat[0] += t / 1e3 / steps  # ms per step
        stat[1] += e.count // steps
    summary = {g: {"ms_per_step": round(v[0], 2), "calls_per_step": v[1]} for g, v in groups.items()}
    lines = [f"{bench.variant} {bench.precision} batch {bench.x.shape[0]}, {steps} training step(s), self "
             f"{'device' if cuda else 'CPU'} time per step by op group:"]
    lines += [f"  {g:<45} {v['ms_per_step']:9.1f} ms  {v['calls_per_step']:6d} calls"
              for g, v in sorted(summary.items(), key=lambda kv: -kv[1]["ms_per_step"])]
    table = averages.table(sort_by=attr, row_limit=25)
    path.write_text("\n".join(lines) + "\n\n" + table + "\n")
    return summary


def profile_cells(cells: list[tuple[str, str]], args, device: torch.device, out_dir: Path, dev_tag: str) -> dict:
    """``--profile`` training steps of every cell under torch.profiler, one text file per cell in ``out_dir``."""
    profiles = {}
    if args.profile:
        for c in cells:
            path = out_dir / f"profile-{dev_tag}-{c[0]}-{c[1]}.txt"
            print(f"profiling {c[0]} {c[1]} -> {path}", flush=True)
            profiles[f"{c[0]}/{c[1]}"] = profile(Bench(*c, args.batch, device), args.profile, path)
    return profiles
