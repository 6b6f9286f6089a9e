"""Host-side cost of a network's module structure: switching train/eval mode and a batch-1 eval forward.

At batch 1 the convolutions are tiny, so the forward's time is mostly Python and dispatch: the per-call overhead a
step pays whatever its batch (on a GPU, the part that can leave the device idle). ``model.train(mode)`` walks every
module, which is why the throughput benchmark switches modes only outside its timed steps
(docs/benchmarks_method.md). Interleaved rounds, median per network; ratios against the hand-written ResNet-56.

    python -m benchmarks.python_overhead --out benchmarks/results/python_overhead-cpu.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from .throughput import Bench

NETWORKS = ("baseline56", "euler56", "midpoint56", "rk4_56")


def _per_call(fn, calls: int) -> float:
    t = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t) / calls


def measure(rounds: int, calls: int) -> dict:
    """Per network: module count, median ms of ``model.train(False)`` and of a batch-1 no-grad forward."""
    benches = {n: Bench((n, "fp32", "eager"), 1, torch.device("cpu")) for n in NETWORKS}
    times = {n: {"mode_switch": [], "forward": []} for n in NETWORKS}
    with torch.no_grad():  # warm-up: the first calls build the convolution primitives
        for b in benches.values():
            b.model.eval()
            for _ in range(5):
                b.model(b.x)
    for r in range(rounds):  # interleaved, order rotated
        for n in NETWORKS[r % len(NETWORKS):] + NETWORKS[:r % len(NETWORKS)]:
            model, x = benches[n].model, benches[n].x
            times[n]["mode_switch"].append(_per_call(lambda m=model: m.train(False), calls))
            with torch.no_grad():
                times[n]["forward"].append(_per_call(lambda m=model, x=x: m(x), calls))
    out = {}
    for n, b in benches.items():
        out[n] = {"modules": sum(1 for _ in b.model.modules()),
                  **{f"{k}_ms": statistics.median(v) * 1e3 for k, v in times[n].items()}}
    base = out["baseline56"]
    for n in NETWORKS:
        out[n]["vs_baseline"] = {k: out[n][f"{k}_ms"] / base[f"{k}_ms"] for k in ("mode_switch", "forward")}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--calls", type=int, default=10, help="calls per timing")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", help="also write the results to this JSON file")
    args = p.parse_args(argv)
    for name in ("rounds", "calls", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    res = measure(args.rounds, args.calls)
    for n, r in res.items():
        print(f"{n}: {r['modules']} modules, mode switch {r['mode_switch_ms']:.3f} ms "
              f"({r['vs_baseline']['mode_switch']:.2f}x), batch-1 forward {r['forward_ms']:.3f} ms "
              f"({r['vs_baseline']['forward']:.3f}x)")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"benchmark": "python_overhead", "torch": torch.__version__, "threads": args.threads,
                       "rounds": args.rounds, "calls": args.calls, "networks": res}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
