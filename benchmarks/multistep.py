"""Multistep networks: reversible memory, step times and the accuracy of reversible gradients (docs/multistep.md).

    python -m benchmarks.multistep [--quick] [--parts memory,speed,accuracy]

- ``memory``: bytes autograd saves for backward in one training forward pass of a Momentum ResNet with T units per
  stage after each Euler entry block (T = 8, 32, 128; width 0.25, 16x16 images, batch 32), reversible vs plain
  autograd. Counted deterministically with ``torch.autograd.graph.saved_tensors_hooks`` (distinct tensors by
  storage, offset and shape); the profiler's CPU peak of a whole training step is reported beside it.
- ``speed``: training-step times, interleaved rounds (``benchmarks/_harness.py``), at depth 56 (8 units per stage
  after the entry block) with placement=full_preact: momentum reversible / momentum autograd, and momentum, lm /
  euler at equal depth. Ratios only; no timed assertion.
- ``accuracy``: relative error of the reversible gradients (every unit parameter and the input, concatenated)
  against autograd's in the same dtype, for one stage of T BN-tanh-conv units, gamma in {0.5, 0.9, 0.99} x
  T in {10, 50, 100, 200} x {fp32, fp64}, with the predicted reconstruction error eps * (1/gamma)^T and whether it
  lies below the tolerance 1e-5 the network factory uses, and the measured relative error of the rebuilt stage
  input.

Writes ``benchmarks/results/multistep-<device>.json`` and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import copy
import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from . import _harness as h

PARTS = ("memory", "speed", "accuracy")


def saved_bytes(model: nn.Module, x: torch.Tensor) -> int:
    seen: dict[tuple, int] = {}

    def pack(t):
        seen[(t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))] = t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        F.cross_entropy(model(x), torch.zeros(len(x), dtype=torch.long, device=x.device))
    return sum(seen.values())


def momentum_net(units: int, reversible: bool, **kw) -> nn.Module:
    from horesnet import build_model

    with warnings.catch_warnings():  # beyond the safe depth (T = 128): memory is measured all the same
        warnings.simplefilter("ignore", UserWarning)
        return build_model(block="momentum", stages=[units + 1] * 3, depth=None, width=0.25,
                           placement="full_preact", reversible=reversible, reversible_unsafe=reversible, **kw)


def memory(units_list, batch: int, side: int, device) -> list[dict]:
    rows = []
    x = torch.randn(batch, 3, side, side, device=device)
    for units in units_list:
        row = {"units_per_stage": units, "depth": 6 * (units + 1) + 2}
        for rev in (False, True):
            torch.manual_seed(0)
            model = momentum_net(units, rev).to(device).train()
            key = "reversible" if rev else "autograd"
            row[f"{key}_saved_mb"] = saved_bytes(model, x) * h.MB

            def step(model=model):
                F.cross_entropy(model(x), torch.zeros(batch, dtype=torch.long, device=device)).backward()

            peak = h.cpu_peak_bytes(step) if device.type == "cpu" else None
            row[f"{key}_peak_mb"] = None if peak is None else peak * h.MB
        row["saved_ratio"] = row["reversible_saved_mb"] / row["autograd_saved_mb"]
        rows.append(row)
        print(f"memory T={units}: saved {row['autograd_saved_mb']:.2f} -> {row['reversible_saved_mb']:.2f} MB",
              flush=True)
    return rows


def speed(batch: int, side: int, rounds: int, steps: int, device, quick: bool) -> dict:
    from horesnet import build_model

    cells = {"euler": dict(block="euler"), "momentum": dict(block="momentum"), "lm": dict(block="lm"),
             "momentum_reversible": dict(block="momentum", reversible=True)}
    x = torch.randn(batch, 3, side, side, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    steppers = {}
    for name, kw in cells.items():
        torch.manual_seed(0)
        model = build_model(depth=56, width=0.25, placement="full_preact", **kw).to(device).train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01)

        def train_step(model=model, opt=opt):
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()

        steppers[name] = h.Stepper(train_step, device)
    res = h.compare(steppers, rounds, steps, 1, quick)
    ratios = {f"{a}/{b}": {"median": res[a]["median_s"] / res[b]["median_s"],
                           "paired": h.paired_ratio(res[a]["rounds"], res[b]["rounds"])}
              for a, b in (("momentum_reversible", "momentum"), ("momentum", "euler"), ("lm", "euler"))}
    for k, v in ratios.items():
        print(f"speed {k}: {v['median']:.3f} (paired {h.fmt(v['paired'])})", flush=True)
    return {"cells": {n: {k: v for k, v in r.items() if k != "rounds"} | {"rounds": r["rounds"]}
                      for n, r in res.items()}, "ratios": ratios}


def accuracy(gammas, units_list, dtypes, device) -> list[dict]:
    from horesnet import get_scheme
    from horesnet.nn.multistep import REVERSIBLE_TOLERANCE, MultistepBlock

    rows = []
    for dtype in dtypes:
        eps = torch.finfo(dtype).eps / 2
        for gamma in gammas:
            for units in units_list:
                torch.manual_seed(0)
                convs = []
                for _ in range(units):
                    conv = nn.Conv2d(4, 4, 3, padding=1)
                    nn.init.normal_(conv.weight, std=0.1)
                    convs.append(nn.Sequential(nn.BatchNorm2d(4), nn.Tanh(), conv))
                plain = MultistepBlock(get_scheme("momentum"), convs, value=gamma).to(device, dtype)
                rev = copy.deepcopy(plain)
                rev.set_reversible(True)
                x = torch.randn(4, 4, 8, 8, device=device, dtype=dtype)
                w = torch.randn_like(x)
                grads = []
                for m in (plain, rev):
                    xi = x.clone().requires_grad_()
                    with warnings.catch_warnings():  # the rebuild's own warning: measured below instead
                        warnings.simplefilter("ignore", UserWarning)
                        (m(xi) * w).sum().backward()
                    grads.append(torch.cat([xi.grad.flatten(), *(p.grad.flatten() for p in m.parameters())]))
                err = ((grads[1] - grads[0]).norm() / grads[0].norm()).item()
                predicted = eps * (1 / gamma) ** units
                rebuilt = rev.last_reconstruction_error
                rows.append({"dtype": str(dtype).replace("torch.", ""), "gamma": gamma, "units": units,
                             "relative_error": err if math.isfinite(err) else None, "predicted_error": predicted,
                             "measured_input_error": rebuilt if rebuilt is not None and math.isfinite(rebuilt)
                             else None,
                             "predicted_safe": predicted <= REVERSIBLE_TOLERANCE})
                print(f"accuracy {rows[-1]['dtype']} gamma={gamma} T={units}: {err:.3g} (predicted {predicted:.3g}, "
                      f"rebuilt input {h.fmt(rows[-1]['measured_input_error'], '.3g')})", flush=True)
    return rows


def markdown(report: dict) -> str:
    out = []
    if "memory" in report:
        out += ["| units/stage (depth) | saved, autograd (MB) | saved, reversible (MB) | ratio | step peak, "
                "autograd / reversible (MB) |", "|---|---|---|---|---|"]
        for r in report["memory"]:
            peaks = f"{h.fmt(r['autograd_peak_mb'], '.1f')} / {h.fmt(r['reversible_peak_mb'], '.1f')}"
            out.append(f"| {r['units_per_stage']} ({r['depth']}) | {r['autograd_saved_mb']:.2f} | "
                       f"{r['reversible_saved_mb']:.2f} | {r['saved_ratio']:.3f} | {peaks} |")
        out.append("")
    if "speed" in report:
        out += ["| training step, depth 56 | median ratio | paired ratio |", "|---|---|---|"]
        out += [f"| {k} | {v['median']:.3f} | {h.fmt(v['paired'])} |" for k, v in report["speed"]["ratios"].items()]
        out.append("")
    if "accuracy" in report:
        units = sorted({r["units"] for r in report["accuracy"]})
        out += ["| dtype, gamma | " + " | ".join(f"T = {u}" for u in units) + " |", "|---" * (len(units) + 1) + "|"]
        keys = dict.fromkeys((r["dtype"], r["gamma"]) for r in report["accuracy"])
        for dt, g in keys:
            cells = []
            for u in units:
                r = next(r for r in report["accuracy"] if (r["dtype"], r["gamma"], r["units"]) == (dt, g, u))
                e = "diverged" if r["relative_error"] is None else f"{r['relative_error']:.1e}"
                cells.append(e + ("" if r["predicted_safe"] else " (unsafe)"))
            out.append(f"| {dt}, {g} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.multistep", description=__doc__.split("\n\n")[0])
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma list of {', '.join(PARTS)}")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--side", type=int, default=16, help="image side")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5)
    h.add_common_args(ap)
    args = ap.parse_args(argv)
    parts = args.parts.split(",")
    bad = [p for p in parts if p not in PARTS]
    if bad:
        ap.error(f"--parts: unknown {', '.join(bad)}; choose from {', '.join(PARTS)}")
    torch.set_num_threads(args.threads)
    device = h.pick_device(args.device)
    quick = args.quick
    report = {"benchmark": "multistep", **h.environment(device), "batch": args.batch, "side": args.side}
    if "memory" in parts:
        report["memory"] = memory([2, 4] if quick else [8, 32, 128], 4 if quick else args.batch,
                                  8 if quick else args.side, device)
    if "speed" in parts:
        report["speed"] = speed(4 if quick else args.batch, 8 if quick else args.side, 1 if quick else args.rounds,
                                1 if quick else args.steps, device, quick)
    if "accuracy" in parts:
        report["accuracy"] = accuracy((0.5, 0.9) if quick else (0.5, 0.9, 0.99), (4, 10) if quick else
                                      (10, 50, 100, 200), (torch.float32, torch.float64), device)
    h.save_report(report, args.out, quick)
    print(markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
