"""Training/eval throughput and memory of horesnet variants against a hand-written ResNet-56.

Variants (all CIFAR, 3x32x32 random inputs, 10 classes): ``baseline56`` (benchmarks/baseline_resnet.py, no
horesnet code) and ``build_model(block=..., depth=...)`` for euler/midpoint/rk4 at depth 56 and euler/rk8 at
depth 92. Precisions: ``fp32`` (eager, contiguous) and ``bf16cl`` (bf16 autocast + channels_last model and
input).

Timing: per variant and precision, ``--warmup`` untimed then ``--steps`` timed training steps (forward +
cross-entropy + backward + SGD step, ``model.train()``) and the same for eval (``torch.no_grad``,
``model.eval()``). The variants are interleaved so that drift hits all of them alike: ``--rounds`` rounds
(rotating the order), and within a round one step of each variant in turn (``--interleave step``, default;
``cell`` runs each variant's steps back to back). A step time is the median of the per-step times of all
rounds; the JSON also has a paired ratio (median over rounds and steps of neighbouring-step ratios).

CPU interference: on a small machine another process (a test run) makes PyTorch's OpenMP threads wait for
each other and a step can take 10-50x longer. For every timed step the CPU time used by *other* processes
(and hypervisor steal) is read from /proc/stat; steps where it exceeds ``--other-cpu-max`` CPUs are marked
disturbed and left out of the medians (unless too few clean steps remain, which the report says). Before
each cell, and after a disturbed step, the script waits up to ``--quiet-wait`` seconds for the machine to be
quiet, and times up to ``--extra-steps`` more steps to replace disturbed ones.

Memory (each variant/precision in fresh child processes, one training step; median of
``--memory-repeats``): bytes of the unique storages saved for backward during the forward
(``saved_tensors_hooks``: the activation memory), the child's peak RSS after the step (``VmHWM``;
``ru_maxrss`` is recorded too, but on Linux it inherits the parent's RSS across fork+exec), and on CUDA
``torch.cuda.max_memory_allocated`` for the step. On Linux CPU one more child runs with a fixed glibc mmap
threshold: default glibc keeps freed large blocks in the heap (dynamic threshold), so the default peak RSS
varies with allocation order and timing; the fixed-threshold peak follows live memory and is reproducible.
Every child imports horesnet, so that the baseline's RSS carries the same library footprint.

Ratios (same run, same precision) are compared with targets; misses are reported, never raised.

    python benchmarks/throughput.py --quick            # smoke run, batch 16
    python benchmarks/throughput.py                    # full run -> benchmarks/results/throughput-<device>.json
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from baseline_resnet import RESNET56_PARAMS, resnet56  # noqa: E402

# name -> (horesnet block or None for the hand-written baseline, depth, reference variant for ratios)
VARIANTS = {
    "baseline56": (None, 56, None),
    "euler56": ("euler", 56, "baseline56"),
    "midpoint56": ("midpoint", 56, "euler56"),
    "rk4_56": ("rk4", 56, "euler56"),
    "euler92": ("euler", 92, None),
    "rk8_92": ("rk8", 92, "euler92"),
}
# name -> (autocast dtype or None, channels_last)
PRECISIONS = {"fp32": (None, False), "bf16cl": (torch.bfloat16, True)}
# Targets: train-step-time ratio and memory ratios (saved activations, peak memory) against the reference.
STEP_TARGET = {"euler56": 1.05, "midpoint56": 1.05, "rk4_56": 1.05, "rk8_92": 1.05}
MEM_TARGET = 1.10
NUM_CLASSES = 10
CHILD_TAG = "CHILD_RESULT "
MB = 1 / 2**20


# ----------------------------------------------------------------------------------------------- models


def make_model(variant: str) -> torch.nn.Module:
    from horesnet.models.factory import build_model  # imported for every variant (equal RSS footprint)

    block, depth, _ = VARIANTS[variant]
    if block is None:
        model = resnet56(NUM_CLASSES)
        n = sum(p.numel() for p in model.parameters())
        assert n == RESNET56_PARAMS, f"baseline ResNet-56 has {n:,} parameters, expected {RESNET56_PARAMS:,}"
        return model
    return build_model(block=block, depth=depth, num_classes=NUM_CLASSES)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


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


# ----------------------------------------------------------------------------------------------- memory


def _proc_status_bytes(field: str) -> int | None:
    """``VmHWM``/``VmRSS`` of this process from /proc/self/status (Linux), in bytes."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _ru_maxrss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # Linux reports KiB


def peak_rss_bytes() -> int:
    """Peak RSS of this process. On Linux ``ru_maxrss`` survives fork+exec, so a child started from a big
    parent reports at least the parent's RSS at fork time; ``VmHWM`` belongs to the exec'd image only."""
    hwm = _proc_status_bytes("VmHWM")
    return hwm if hwm is not None else _ru_maxrss_bytes()


def measure_memory(variant: str, precision: str, batch: int, device: torch.device) -> dict:
    """One training step; meant to run in a fresh process so that the RSS peak is this variant's own."""
    bench = Bench(variant, precision, batch, device)
    param_ptrs = {p.untyped_storage().data_ptr() for p in bench.model.parameters()}
    saved: dict[int, int] = {}

    def pack(t):
        st = t.untyped_storage()
        saved[st.data_ptr()] = st.nbytes()
        return t

    bench.model.train()
    bench.opt.zero_grad(set_to_none=True)
    sync(device)
    peak_before, rss_before = peak_rss_bytes(), _proc_status_bytes("VmRSS")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        cuda_before = torch.cuda.memory_allocated(device)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = bench.forward_loss()
    loss.backward()
    bench.opt.step()
    sync(device)
    out = {
        "saved_bytes": sum(saved.values()),
        "saved_param_bytes": sum(n for p, n in saved.items() if p in param_ptrs),
        "saved_storages": len(saved),
        "rss_before_step_bytes": rss_before,
        "peak_rss_before_step_bytes": peak_before,
        "peak_rss_bytes": peak_rss_bytes(),
        "ru_maxrss_bytes": _ru_maxrss_bytes(),
    }
    out["peak_rss_step_delta_bytes"] = out["peak_rss_bytes"] - peak_before
    if device.type == "cuda":
        out["cuda_before_step_bytes"] = cuda_before
        out["cuda_max_allocated_bytes"] = torch.cuda.max_memory_allocated(device)
    return out


# glibc's dynamic mmap threshold makes peak RSS depend on allocation order and timing (freed large blocks stay in
# the heap); a fixed threshold returns every large tensor to the OS on free, so the peak follows live memory.
FIXED_MMAP_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def run_child(variant: str, precision: str, args, env: dict | None = None) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", variant, "--precision-child", precision,
           "--batch", str(args.batch), "--device", args.device, "--threads", str(args.threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env={**os.environ, **(env or {})})
    for line in proc.stdout.splitlines():
        if line.startswith(CHILD_TAG):
            return json.loads(line[len(CHILD_TAG):])
    raise RuntimeError(f"memory child for {variant}/{precision} failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")


def memory_of(variant: str, precision: str, args) -> dict:
    """Median over ``--memory-repeats`` fresh children (saved bytes are deterministic; RSS is not), plus one
    child with a fixed glibc mmap threshold (CPU only), whose peak RSS is reproducible."""
    repeats = [run_child(variant, precision, args) for _ in range(args.memory_repeats)]
    out = {"repeats": repeats}
    for key in repeats[0]:
        out[key] = statistics.median_low([r[key] for r in repeats])
    if args.device == "cpu" and sys.platform.startswith("linux"):
        fixed = run_child(variant, precision, args, FIXED_MMAP_ENV)
        out["fixed_mmap"] = {"env": FIXED_MMAP_ENV, **fixed}
        out["peak_rss_fixed_mmap_bytes"] = fixed["peak_rss_bytes"]
    return out


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


# ----------------------------------------------------------------------------------------------- report


def git_commit() -> dict:
    def git(*a):
        return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ratio(a, b):
    return a / b if a is not None and b else None


def paired_ratio(rounds: list[list[dict]], ref_rounds: list[list[dict]]) -> float | None:
    """Median of step-by-step ratios (k-th step of a round against the reference's k-th; both clean)."""
    ratios = [a["s"] / b["s"] for ra, rb in zip(rounds, ref_rounds, strict=True) for a, b in zip(ra, rb, strict=False)
              if not a["disturbed"] and not b["disturbed"]]
    return statistics.median(ratios) if ratios else None


def _le(value, target):
    return None if value is None or target is None else value <= target


def compute_ratios(results: dict, device: torch.device) -> list[dict]:
    peak_key = "cuda_max_allocated_bytes" if device.type == "cuda" else "peak_rss_bytes"
    rows = []
    for precision, by_variant in results.items():
        for variant, r in by_variant.items():
            ref = VARIANTS[variant][2]
            if ref is None or ref not in by_variant:
                continue
            q = by_variant[ref]
            mem, qmem = r.get("memory", {}), q.get("memory", {})
            per_round = [
                _ratio(statistics.median(s["s"] for s in a), statistics.median(s["s"] for s in b))
                for a, b in zip(r["train_steps"], q["train_steps"], strict=True)
            ]
            row = {
                "variant": variant, "reference": ref, "precision": precision,
                "train_step_ratio_paired": paired_ratio(r["train_steps"], q["train_steps"]),
                "eval_step_ratio_paired": paired_ratio(r["eval_steps"], q["eval_steps"]),
                "train_step_ratio": _ratio(r["train_step_s"], q["train_step_s"]),
                "eval_step_ratio": _ratio(r["eval_step_s"], q["eval_step_s"]),
                "train_step_ratio_per_round_all_steps": per_round,
                "saved_activation_ratio": _ratio(mem.get("saved_bytes"), qmem.get("saved_bytes")),
                "peak_memory_ratio": _ratio(mem.get(peak_key), qmem.get(peak_key)),
                "peak_memory_metric": peak_key,
                "peak_rss_step_delta_ratio": _ratio(mem.get("peak_rss_step_delta_bytes"),
                                                    qmem.get("peak_rss_step_delta_bytes")),
                "peak_rss_fixed_mmap_ratio": _ratio(mem.get("peak_rss_fixed_mmap_bytes"),
                                                    qmem.get("peak_rss_fixed_mmap_bytes")),
            }
            step_target = STEP_TARGET.get(variant)
            row["targets"] = {"train_step_ratio_max": step_target, "memory_ratio_max": MEM_TARGET}
            row["pass"] = {
                "train_step": _le(row["train_step_ratio"], step_target),
                "saved_activation": _le(row["saved_activation_ratio"], MEM_TARGET),
                "peak_memory": _le(row["peak_memory_ratio"], MEM_TARGET),
                "peak_rss_fixed_mmap": _le(row["peak_rss_fixed_mmap_ratio"], MEM_TARGET),
            }
            rows.append(row)
    return rows


def _f(v, fmt):
    return "–" if v is None else format(v, fmt)


def _flag(ok):
    return "" if ok is None else (" ✓" if ok else " ✗")


def markdown(report: dict) -> str:
    cuda = report["device"].startswith("cuda")
    peak_name = "peak CUDA MB" if cuda else "peak RSS MB"
    peak_key = "cuda_max_allocated_bytes" if cuda else "peak_rss_bytes"
    ratios = {(r["precision"], r["variant"]): r for r in report["ratios"]}
    lines = [
        f"Throughput on {report['device_name']} ({report['device']}), torch {report['torch']}, "
        f"{report['threads']} threads, batch {report['batch']}, {report['steps']} timed steps x "
        f"{report['rounds']} interleaved rounds (median), {report['date']}, commit "
        f"{(report['git'].get('commit') or '?')[:10]}{'+dirty' if report['git'].get('dirty') else ''}",
        "",
        "| variant | precision | train img/s | eval img/s | vs | train ratio | eval ratio | saved act MB | "
        f"{peak_name} | act ratio | peak ratio |" + ("" if cuda else " RSS fixed-mmap MB | fixed-mmap ratio |"),
        "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|" + ("" if cuda else "---:|---:|"),
    ]
    for precision, by_variant in report["results"].items():
        for variant, r in by_variant.items():
            rr = ratios.get((precision, variant), {})
            mem = r.get("memory", {})
            ok = rr.get("pass", {})
            fixed = mem.get("peak_rss_fixed_mmap_bytes")
            lines.append(
                f"| {variant} | {precision} | {r['train_img_s']:.1f} | {r['eval_img_s']:.1f} | "
                f"{rr.get('reference', '')} | {_f(rr.get('train_step_ratio'), '.3f')}{_flag(ok.get('train_step'))} | "
                f"{_f(rr.get('eval_step_ratio'), '.3f')} | "
                f"{_f(mem.get('saved_bytes') and mem['saved_bytes'] * MB, '.1f')} | "
                f"{_f(mem.get(peak_key) and mem[peak_key] * MB, '.1f')} | "
                f"{_f(rr.get('saved_activation_ratio'), '.3f')}{_flag(ok.get('saved_activation'))} | "
                f"{_f(rr.get('peak_memory_ratio'), '.3f')}{_flag(ok.get('peak_memory'))} |"
                + ("" if cuda else f" {_f(fixed and fixed * MB, '.1f')} | "
                                   f"{_f(rr.get('peak_rss_fixed_mmap_ratio'), '.3f')}"
                                   f"{_flag(ok.get('peak_rss_fixed_mmap'))} |")
            )
    lines += ["", f"Targets: train-step ratio <= {max(STEP_TARGET.values())} (euler56 vs baseline56, midpoint56 and "
              f"rk4_56 vs euler56, rk8_92 vs euler92); saved-activation and peak-memory ratios <= {MEM_TARGET}. "
              "✓ pass, ✗ miss."]
    if not cuda:
        lines.append("Peak RSS (glibc defaults, median of the repeats) includes the torch/horesnet runtime (~0.35 GB) "
                     "and glibc heap fragmentation, which varies from run to run; RSS fixed-mmap is one child with "
                     f"{next(iter(FIXED_MMAP_ENV))}={next(iter(FIXED_MMAP_ENV.values()))}, whose peak follows live "
                     "memory and is reproducible.")
    dirty = report["interference"]
    lines.append(f"CPU interference: {dirty['disturbed_steps']} of {dirty['timed_steps']} timed steps disturbed "
                 f"(other processes > {dirty['other_cpu_max']} CPU) and left out"
                 + (f"; too few clean steps, all steps used: {', '.join(dirty['cells_using_all_steps'])}"
                    if dirty["cells_using_all_steps"] else "") + ".")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------- main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list from {', '.join(VARIANTS)}")
    p.add_argument("--precisions", default=",".join(PRECISIONS), help=f"comma list from {', '.join(PRECISIONS)}")
    p.add_argument("--batch", type=int, default=None, help="batch size (default 128; 16 with --quick)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per round (default 8; 2 with --quick)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps per round (default 2; 1 with --quick)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3; 1 with --quick)")
    p.add_argument("--memory-repeats", type=int, default=None,
                   help="fresh child processes per memory cell, median (default 3; 1 with --quick)")
    p.add_argument("--interleave", choices=("step", "cell"), default="step",
                   help="within a round, alternate the cells every step (default; pairs neighbouring steps of\n"
                        "all variants) or run each cell's steps back to back")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--quick", action="store_true", help="fast smoke run: batch 16, 2 steps, 1 warm-up, 1 round")
    p.add_argument("--other-cpu-max", type=float, default=0.25,
                   help="a timed step is disturbed when other processes used more CPUs than this (default 0.25)")
    p.add_argument("--quiet-wait", type=float, default=None,
                   help="seconds to wait for a quiet machine before each cell, 10x that in all (default 30; 3 --quick)")
    p.add_argument("--extra-steps", type=int, default=None,
                   help="more timed steps allowed per cell to replace disturbed ones (default steps // 2)")
    p.add_argument("--no-memory", action="store_true", help="skip the memory children")
    p.add_argument("--profile", type=int, default=0, metavar="N",
                   help="also profile N training steps per variant/precision (torch.profiler) into the results dir")
    p.add_argument("--out", default=None,
                   help="JSON path (default benchmarks/results/throughput-<device>[-quick].json)")
    p.add_argument("--markdown", default=None, metavar="PATH", help="also write the Markdown table to PATH")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--precision-child", default="fp32", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    quick = dict(batch=16, steps=2, warmup=1, rounds=1, memory_repeats=1, quiet_wait=3.0)
    full = dict(batch=128, steps=8, warmup=2, rounds=3, memory_repeats=3, quiet_wait=30.0)
    for k, v in (quick if args.quick else full).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.extra_steps is None:
        args.extra_steps = args.steps // 2
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    for name, choices in (("variants", VARIANTS), ("precisions", PRECISIONS)):
        values = [v.strip() for v in getattr(args, name).split(",") if v.strip()]
        bad = [v for v in values if v not in choices]
        if bad or not values:
            p.error(f"--{name}: unknown {bad or 'empty list'}; choose from {', '.join(choices)}")
        setattr(args, name, values)
    for name in ("batch", "steps", "rounds", "memory_repeats", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if args.child:
        result = measure_memory(args.child, args.precision_child, args.batch, device)
        print(CHILD_TAG + json.dumps(result), flush=True)
        return 0

    dev_tag = device.type + ("-quick" if args.quick else "")
    out = Path(args.out) if args.out else HERE / "results" / f"throughput-{dev_tag}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    cells = [(v, p) for p in args.precisions for v in args.variants]
    t_start = time.perf_counter()

    memory = {}  # first, while this parent is still small
    if not args.no_memory:
        for c in cells:
            memory[c] = m = memory_of(*c, args)
            peak = m.get("cuda_max_allocated_bytes", m["peak_rss_bytes"])
            print(f"memory {c[0]:>10} {c[1]:>6}: saved {m['saved_bytes'] * MB:8.1f} MB  "
                  f"peak {'CUDA' if device.type == 'cuda' else 'RSS'} {peak * MB:8.1f} MB", flush=True)

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

    profiles = {}
    if args.profile:
        for c in cells:
            path = out.parent / f"profile-{dev_tag}-{c[0]}-{c[1]}.txt"
            print(f"profiling {c[0]} {c[1]} -> {path}", flush=True)
            profiles[f"{c[0]}/{c[1]}"] = profile(Bench(*c, args.batch, device), args.profile, path)

    results: dict = {}
    all_steps_cells, n_steps, n_bad = [], 0, 0
    for v, p in cells:
        r = raw[(v, p)]
        train, train_clean, train_n = step_time(r["train"])
        ev, eval_clean, eval_n = step_time(r["eval"])
        n_steps += train_n + eval_n
        n_bad += train_n - train_clean + eval_n - eval_clean
        for kind, clean, n in (("train", train_clean, train_n), ("eval", eval_clean, eval_n)):
            if clean < max(3, n // 4) and clean != n:
                all_steps_cells.append(f"{v}/{p}/{kind}")
        results.setdefault(p, {})[v] = {
            "params": sum(t.numel() for t in make_model(v).parameters()),
            "train_step_s": train, "eval_step_s": ev,
            "train_img_s": args.batch / train, "eval_img_s": args.batch / ev,
            "train_clean_steps": train_clean, "eval_clean_steps": eval_clean,
            "train_steps": r["train"], "eval_steps": r["eval"], "quiet_wait_s": r["quiet_wait_s"],
            "memory": memory.get((v, p), {}),
        }
    report = {
        "benchmark": "throughput",
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "git": git_commit(),
        "batch": args.batch, "steps": args.steps, "warmup": args.warmup, "rounds": args.rounds,
        "interleave": args.interleave, "extra_steps": args.extra_steps,
        "memory_repeats": args.memory_repeats, "quick": args.quick,
        "timing_wall_s": timing_s, "total_wall_s": time.perf_counter() - t_start,
        "rounds_info": rounds_info,
        "interference": {"other_cpu_max": args.other_cpu_max, "timed_steps": n_steps, "disturbed_steps": n_bad,
                         "cells_using_all_steps": all_steps_cells},
        "targets": {"train_step_ratio_max": STEP_TARGET, "memory_ratio_max": MEM_TARGET},
        "results": results,
        "ratios": compute_ratios(results, device),
    }
    if profiles:
        report["profile_ms_per_step_by_group"] = profiles
    report["all_pass"] = all(ok is not False for r in report["ratios"] for ok in r["pass"].values())
    out.write_text(json.dumps(report, indent=2) + "\n")
    table = markdown(report)
    print()
    print(table)
    print(f"wrote {out}")
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text(table)
        print(f"wrote {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
