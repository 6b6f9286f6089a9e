"""Bytes moved by the elementwise ops of one training step, per variant, with and without the fused combination.

A TorchDispatchMode sums the sizes of every tensor (inputs and outputs, tensors of more than 10k elements) of each
add/mul/sub/div/sum/copy/clone/zero op over a forward + backward of ``build_model(block, depth)`` at batch
``--batch``: a count that does not depend on the machine or on other processes, unlike a timing. ``non-GEMM MB``
counts every op but the convolutions and matrix products (BatchNorm, ReLU, padding, ... included), so the
hand-written baseline (``baseline-56``, no horesnet code) can be compared with ``euler-56`` op for op.

    python -m benchmarks.elementwise_traffic     # baseline-56, euler-56, rk4-56, euler-92, rk8-92, batch 32
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from horesnet import build_model
from horesnet.nn import SchemeBlock

ELEMENTWISE = {"add", "add_", "mul", "mul_", "sub", "sub_", "div", "div_", "sum", "clone", "copy_", "zero_",
               "fill_", "zeros_like"}


GEMM = {"convolution", "convolution_backward", "mm", "addmm", "bmm", "mkldnn_convolution"}
NO_TRAFFIC = {"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "detach", "alias"}


class ElementwiseBytes(TorchDispatchMode):
    def __init__(self, min_numel: int = 10_000):
        super().__init__()
        self.min_numel, self.bytes, self.calls, self.non_gemm = min_numel, 0, 0, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.__name__.split(".")[0]
        if name in GEMM or name in NO_TRAFFIC or func.is_view:  # views and allocations move no bytes
            return out
        outs = out if isinstance(out, tuple | list) else [out]
        big = [t for t in (*args, *outs) if isinstance(t, torch.Tensor) and t.numel() > self.min_numel]
        moved = sum(t.numel() * t.element_size() for t in big)
        self.non_gemm += moved
        if name in ELEMENTWISE and big:
            self.bytes += moved
            self.calls += 1
        return out


def measure(block: str, depth: int, fused: bool, batch: int) -> dict:
    torch.manual_seed(0)
    if block == "baseline":
        from .baseline_resnet import CifarResNet

        model = CifarResNet([(depth - 2) // 6] * 3, num_classes=10)
    else:
        model = build_model(block=block, depth=depth, num_classes=10)
    for m in model.modules():
        if isinstance(m, SchemeBlock):
            m.fused = fused
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    with ElementwiseBytes() as count:
        F.cross_entropy(model(x), y).backward()
    return {"variant": f"{block}-{depth}", "fused": fused, "batch": batch, "MB": round(count.bytes / 2**20, 1),
            "ops": count.calls, "non_gemm_MB": round(count.non_gemm / 2**20, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variants", default="baseline-56,euler-56,rk4-56,euler-92,rk8-92",
                   help="comma list of block-depth (block: a registered block or baseline)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    args = p.parse_args(argv)
    rows = []
    for variant in args.variants.split(","):
        block, depth = variant.rsplit("-", 1)
        for fused in (False, True) if block != "baseline" else (False,):
            rows.append(measure(block, int(depth), fused, args.batch))
            r = rows[-1]
            print(f"{r['variant']:>11} {'fused' if fused else 'plain':>5}: {r['MB']:8.1f} MB in {r['ops']} ops; "
                  f"non-GEMM {r['non_gemm_MB']:8.1f} MB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
