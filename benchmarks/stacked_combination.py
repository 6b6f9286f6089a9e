"""Forward stage combinations of one RK8 block: an in-place add chain vs stacked increments and one matrix product.

The chain (what ``SchemeBlock`` does in eager mode) computes each stage input ``base + sum_j a_ij k_j`` as one add
and one in-place add per further non-zero term. The stacked form copies each increment once into a buffer ``K``
and computes each stage input as ``addmv(base, K[:i]^T, A[i, :i])`` (the zeros of the tableau's row included, as a
prefix of ``K`` is the only slice that needs no gather). Both compute the same numbers; this measures which is
faster on the machine it runs on (a design decision recorded in docs/speed.md).

    python -m benchmarks.stacked_combination            # batch 128, stage-1 size of a CIFAR network (16x32x32)
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from horesnet.schemes import get_scheme


def tableau(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    scheme = get_scheme(name)
    a = torch.zeros(scheme.increments, scheme.increments)
    for i, row in enumerate(scheme.nonzero_A()):
        for j, v in row:
            a[i, j] = v
    b = torch.zeros(scheme.increments)
    for j, v in scheme.nonzero_b():
        b[j] = v
    return a, b


def chain(base, ks, a, b):
    outs = []
    for row in [*a[1:], b]:
        out = None
        for j, v in enumerate(row.tolist()):
            if v == 0.0 or j >= len(ks):
                continue
            out = torch.add(base, ks[j], alpha=v) if out is None else out.add_(ks[j], alpha=v)
        outs.append(out)
    return outs


def stacked(base, ks, a, b):
    s = len(ks)
    buf = torch.empty(s, base.numel(), dtype=base.dtype)
    buf[0].copy_(ks[0])
    outs = []
    for i in range(1, s):
        outs.append(torch.addmv(base, buf[:i].t(), a[i, :i]))
        buf[i].copy_(ks[i])
    outs.append(torch.addmv(base, buf.t(), b))
    return outs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scheme", default="rk8")
    p.add_argument("--numel", type=int, default=128 * 16 * 32 * 32, help="elements per increment")
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args(argv)
    a, b = tableau(args.scheme)
    torch.manual_seed(0)
    base = torch.randn(args.numel)
    ks = [torch.randn(args.numel) for _ in range(a.shape[0])]
    small = [t[:4096].double() for t in (base, *ks)]  # same numbers, checked in float64 (fp32 sums differ in order)
    for want, got in zip(chain(small[0], small[1:], a.double(), b.double()),
                         stacked(small[0], small[1:], a.double(), b.double()), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    times = {"chain": [], "stacked": []}
    for r in range(args.repeats):  # interleaved, order alternated
        for name in ("chain", "stacked") if r % 2 == 0 else ("stacked", "chain"):
            fn = chain if name == "chain" else stacked
            t = time.perf_counter()
            fn(base, ks, a, b)
            times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v[1:]) for k, v in times.items()}  # first call of each left out
    print(f"{args.scheme}, {args.numel:,} elements per increment, median of {args.repeats - 1}: "
          f"chain {med['chain'] * 1e3:.1f} ms, stacked {med['stacked'] * 1e3:.1f} ms, "
          f"stacked/chain {med['stacked'] / med['chain']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
