"""Memory of the throughput benchmark: saved activations and peak RSS/CUDA memory, each in fresh child processes.

The children are ``throughput.py --child VARIANT --precision-child PRECISION ...``; a child runs one training step
(:func:`measure_memory`) and prints its result as one ``CHILD_RESULT <json>`` line (:func:`child_main`).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

import torch
from _timing import Bench
from _variants import HERE, MB, REPO, sync

CHILD_TAG = "CHILD_RESULT "
SCRIPT = HERE / "throughput.py"  # the command-line entry point, re-run with --child in every memory child


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
    cmd = [sys.executable, str(SCRIPT), "--child", variant, "--precision-child", precision,
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


def measure_cells(cells: list[tuple[str, str]], args, device: torch.device) -> dict:
    """:func:`memory_of` every cell (variant, precision), printing a line per cell; ``{}`` with ``--no-memory``."""
    memory = {}  # first, while this parent is still small
    if not args.no_memory:
        for c in cells:
            memory[c] = m = memory_of(*c, args)
            peak = m.get("cuda_max_allocated_bytes", m["peak_rss_bytes"])
            print(f"memory {c[0]:>10} {c[1]:>6}: saved {m['saved_bytes'] * MB:8.1f} MB  "
                  f"peak {'CUDA' if device.type == 'cuda' else 'RSS'} {peak * MB:8.1f} MB", flush=True)
    return memory


def child_main(args, device: torch.device) -> int:
    """Body of a ``--child`` process: one :func:`measure_memory`, printed on stdout for :func:`run_child`."""
    result = measure_memory(args.child, args.precision_child, args.batch, device)
    print(CHILD_TAG + json.dumps(result), flush=True)
    return 0
