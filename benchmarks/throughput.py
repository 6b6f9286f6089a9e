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
import sys
import time
from pathlib import Path

import torch

# The implementation lives next to this entry point: _variants.py (variants, precisions, targets, models),
# _timing.py (CPU-interference watch, step timing, interleaved rounds, profiler), _memory.py (saved-activation and
# peak-memory children, which re-run this script with --child) and _report.py (ratios, JSON and Markdown).
HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _memory import child_main, measure_cells  # noqa: E402
from _report import build_report, write_outputs  # noqa: E402
from _timing import profile_cells, time_cells  # noqa: E402
from _variants import PRECISIONS, VARIANTS  # noqa: E402


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
        return child_main(args, device)

    dev_tag = device.type + ("-quick" if args.quick else "")
    out = Path(args.out) if args.out else HERE / "results" / f"throughput-{dev_tag}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    cells = [(v, p) for p in args.precisions for v in args.variants]
    t_start = time.perf_counter()

    memory = measure_cells(cells, args, device)  # first, while this parent is still small
    raw, rounds_info, timing_s = time_cells(cells, args, device)
    profiles = profile_cells(cells, args, device, out.parent, dev_tag)
    report = build_report(args, device, raw, memory, profiles, rounds_info, timing_s, t_start)
    write_outputs(report, out, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
