"""Forward stage combinations of one RK8 block: an in-place add chain, stacked increments, one kernel per stage.

The chain (what ``SchemeBlock`` does in eager mode) computes each stage input ``base + sum_j a_ij k_j`` as one add
and one in-place add per further non-zero term: each term costs three passes over memory (read ``out`` and
``k_j``, write ``out``). The stacked form copies each increment once into a buffer ``K`` and computes each stage
input as ``addmv(base, K[:i]^T, A[i, :i])`` (the zeros of the tableau's row included, as a prefix of ``K`` is the
only slice that needs no gather). The one-pass form is one generated kernel per stage (``torch.compile`` of the
row's sum, its coefficients as constants) that reads every term once and writes the result once: ``n + 2``
passes instead of ``3 n``, the least any kernel can move. All three compute the same numbers; this measures which
is fastest on the machine it runs on (a design decision recorded in docs/speed.md).

    python -m benchmarks.stacked_combination            # batch 128, stage-1 size of a CIFAR network (16x32x32)
    python -m benchmarks.stacked_combination --dtype bfloat16   # the increments' dtype under bf16 autocast
"""

from __future__ import annotations

import argparse
import json
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


def passes(a, b) -> dict[str, int]:
    """Passes over one increment-sized tensor each form must make for the block (reads + writes)."""
    terms, s = [int((row != 0).sum()) for row in [*a[1:], b]], a.shape[0]
    prefix = sum(i + 2 for i in range(1, s)) + s + 2  # addmv reads the whole prefix K[:i], zeros included
    return {"chain": sum(3 * n for n in terms), "stacked": prefix + 2 * s, "one_pass": sum(n + 2 for n in terms)}


def one_pass_kernels(a, b, s: int) -> list:
    """Per row of ``[A[1:], b]``: its non-zero columns and a compiled ``base + sum_j a_j k_j`` (one kernel)."""
    kernels = []
    for row in [*a[1:], b]:
        cols = [j for j, v in enumerate(row.tolist()) if v != 0.0 and j < s]
        coeffs = [row[j].item() for j in cols]

        def row_sum(base, *terms, coeffs=tuple(coeffs)):
            out = base
            for c, t in zip(coeffs, terms, strict=True):
                out = out + c * t
            return out

        kernels.append((cols, torch.compile(row_sum, fullgraph=True, dynamic=False)))
    return kernels


def one_pass(base, ks, kernels):
    # the kernels share one code object, which dynamo compiles once per row (its coefficients are constants)
    with torch._dynamo.config.patch(recompile_limit=max(8, 4 * len(kernels))):
        return [kernel(base, *(ks[j] for j in cols)) for cols, kernel in kernels]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scheme", default="rk8")
    p.add_argument("--numel", type=int, default=128 * 16 * 32 * 32, help="elements per increment")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32", help="dtype of the increments")
    p.add_argument("--out", help="also write the medians to this JSON file")
    args = p.parse_args(argv)
    if args.numel < 1 or args.repeats < 2:
        p.error(f"--numel must be >= 1 and --repeats >= 2 (the first repeat is left out), got {args.numel}, "
                f"{args.repeats}")
    try:
        a, b = tableau(args.scheme)
    except (KeyError, ValueError) as e:
        p.error(f"--scheme: {e}")
    torch.manual_seed(0)
    dtype = getattr(torch, args.dtype)
    base = torch.randn(args.numel, dtype=dtype)
    ks = [torch.randn(args.numel, dtype=dtype) for _ in range(a.shape[0])]
    small = [t[:4096].double() for t in (base, *ks)]  # same numbers, checked in float64 (fp32 sums differ in order)
    for want, got in zip(chain(small[0], small[1:], a.double(), b.double()),
                         stacked(small[0], small[1:], a.double(), b.double()), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    kernels = one_pass_kernels(a.double(), b.double(), a.shape[0])
    for want, got in zip(chain(small[0], small[1:], a.double(), b.double()), one_pass(small[0], small[1:], kernels),
                         strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    a, b = a.to(dtype), b.to(dtype)
    kernels = one_pass_kernels(a, b, a.shape[0])
    forms = {"chain": lambda: chain(base, ks, a, b), "stacked": lambda: stacked(base, ks, a, b),
             "one_pass": lambda: one_pass(base, ks, kernels)}
    forms["one_pass"]()  # compiles the kernels
    times = {name: [] for name in forms}
    for r in range(args.repeats):  # interleaved, order rotated
        names = list(forms)[r % 3:] + list(forms)[:r % 3]
        for name in names:
            t = time.perf_counter()
            forms[name]()
            times[name].append(time.perf_counter() - t)
    med = {k: statistics.median(v[1:]) for k, v in times.items()}  # first call of each left out
    gbps = {k: passes(a, b)[k] * args.numel * base.element_size() / med[k] / 1e9 for k in med}
    print(f"{args.scheme}, {args.dtype}, {args.numel:,} elements per increment, median of {args.repeats - 1}: "
          + ", ".join(f"{k} {v * 1e3:.1f} ms ({gbps[k]:.1f} GB/s)" for k, v in med.items())
          + f"; stacked/chain {med['stacked'] / med['chain']:.2f}, one_pass/chain {med['one_pass'] / med['chain']:.2f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"scheme": args.scheme, "dtype": args.dtype, "numel": args.numel,
                       "threads": torch.get_num_threads(),
                       "median_ms": {k: v * 1e3 for k, v in med.items()}, "passes": passes(a, b),
                       "effective_GB_per_s": gbps,
                       "ratio_to_chain": {k: v / med["chain"] for k, v in med.items()}}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
