"""Transformer stacks: horesnet's Euler stack vs torch's own layers, RK2 and RK4 over layers vs Euler, tokens/s.

    python -m benchmarks.transformer_speed [--d-model 128] [--layers 4] [--context 64] [--batch 32]
        [--rounds 10] [--steps 6] [--precisions fp32,bf16] [--threads 1] [--markdown PATH] [--quick]

The causal character-level model of the study (83 symbols, 4 layers = 8 residual functions, width 128, 4 heads,
64 tokens x 32 sequences) built four ways, all with the same parameter count:

- ``euler``: horesnet's Euler Transformer (``arch=transformer``, layout=alternate: A, M, A, M, ...);
- ``torch``: the same network built from ``nn.TransformerEncoderLayer(norm_first=True, batch_first=True,
  dropout=0, activation="gelu")`` with Euler's weights copied in (its own copy of the embedding, final norm and
  head; its outputs are checked equal to Euler's before anything is timed, in fp32 and under bf16 autocast);
- ``heun_layers`` / ``rk4_layers``: RK2 (Heun) and RK4 over whole layers (layout=layer) at the same unit count
  (4 layers = 2 Heun blocks = 1 RK4 block, so every block is whole).

Steps: one AdamW training step (forward, next-token loss, backward, update) and one forward pass without autograd,
in fp32 and under ``torch.autocast(device, dtype=torch.bfloat16)`` (the backward and the update outside it).

Timing (the paired method of ``benchmarks/multistep.py``'s speed part): in every round, for every pair
(cell, reference, kind, precision), ``steps`` adjacent A/B pairs of timed steps, the order alternating (A B, B A,
...), each timed step right after an untimed one of the same callable. The ratio of each pair, pooled over rounds:
median with a 95% order-statistics interval, also the geometric mean of the round medians with a Student-t
interval, for wall time and for process CPU time per call (robust to other processes on a shared machine). The
verdict against the target 1.03: ``below`` (whole interval at or under it), ``above`` (whole interval over it),
``undecided`` (it straddles it). Tokens per second: batch x context over the median step time of each model's timed
steps. One thread by default (``--threads``). No timed assertion.

Writes ``benchmarks/results/transformer_speed-<device>.json`` (every step's wall and CPU time) and, with
``--markdown``, a table.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import _harness as h
from ._processes import ratio_interval
from .multistep import median_interval

TARGET = 1.03
PRECISIONS = ("fp32", "bf16")


class TorchStack(nn.Module):
    """A copy of a horesnet Transformer's embedding and positions, torch's layers, the final LayerNorm and head."""

    def __init__(self, stem, layers: list[nn.TransformerEncoderLayer]):
        super().__init__()
        self.stem, self.layers = stem, nn.ModuleList(layers)

    def forward(self, x):
        h = self.stem.forward_stem(x)
        mask = nn.Transformer.generate_square_subsequent_mask(h.shape[1], device=h.device, dtype=h.dtype)
        for layer in self.layers:
            h = layer(h, src_mask=mask, is_causal=True)
        return self.stem.fc(self.stem.final(h))


def torch_twin(model, d: int, heads: int, layers: int) -> TorchStack:
    """The same network from ``nn.TransformerEncoderLayer``: units copied in; the stem, final norm and head are a
    copy of ``model``'s without its stage, so the twin has exactly ``model``'s parameters and shares none."""
    from horesnet.nn.transformer import copy_to_torch_layer

    units = [u for _, u, _ in model.units()]
    out = []
    for i in range(layers):
        layer = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        copy_to_torch_layer(units[2 * i], units[2 * i + 1], layer)
        out.append(layer)
    stem = copy.deepcopy(model)
    del stem.stages
    return TorchStack(stem, out)


def cpu_has_bf16() -> bool | None:
    """Whether the CPU has bf16 instructions (AVX-512 BF16 or AMX-BF16); None when /proc/cpuinfo is unreadable."""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return None
    return any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))


class Cell:
    """One model with its own AdamW; ``train``/``eval`` in fp32 or under bf16 autocast."""

    def __init__(self, model, inp, target, device):
        self.model, self.inp, self.target, self.device = model, inp, target, device
        self.opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def _autocast(self, precision):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    def train(self, precision):
        if not self.model.training:
            self.model.train()
        with self._autocast(precision):
            loss = F.cross_entropy(self.model(self.inp).flatten(0, 1).float(), self.target)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def eval(self, precision):
        if self.model.training:
            self.model.eval()
        with torch.no_grad(), self._autocast(precision):
            self.model(self.inp)


def timed(fn, device) -> dict:
    """One untimed call, then one timed call: wall time, process CPU time, other processes' CPU use."""
    fn()
    h.sync(device)
    with h.CpuWatch() as w:
        fn()
        h.sync(device)
    return {"s": w.wall, "cpu_s": w.cpu, "other_cpus": w.load}


def summary(ratios: list[float], per_round: list[list[float]]) -> dict:
    med, lo, hi = median_interval(ratios)
    round_medians = [statistics.median(r) for r in per_round]
    between = ratio_interval(round_medians)
    return {"ratio": med, "ci_low": lo, "ci_high": hi,
            "verdict": "below" if hi <= TARGET else "above" if lo > TARGET else "undecided",
            "rounds_geomean": between["geometric_mean"], "rounds_ci_low": between["ci_low"],
            "rounds_ci_high": between["ci_high"], "round_median_min": min(round_medians),
            "round_median_max": max(round_medians)}


def markdown(report: dict) -> str:
    m = report["model"]
    out = [f"Paired adjacent steps, {report['pairs_per_ratio']} pairs per ratio, {report['threads']} thread(s), "
           f"{report['device_name']}, torch {report['torch']}, {report['date'][:10]}; {m['layers']} layers, "
           f"d_model {m['d_model']}, {m['heads']} heads, {m['batch']} x {m['context']} tokens. Median of pair "
           "ratios [95% interval]; target ≤ 1.03.", "",
           "| ratio | step | precision | wall time | verdict | CPU time | verdict | ms (cell / reference) |",
           "|---|---|---|---|---|---|---|---|"]
    for r in report["ratios"]:
        w, c = r["wall"], r["cpu"]
        out.append(f"| {r['cell']} / {r['reference']} | {r['kind']} | {r['precision']} | {w['ratio']:.3f} "
                   f"[{w['ci_low']:.3f}, {w['ci_high']:.3f}] | {w['verdict']} | {c['ratio']:.3f} "
                   f"[{c['ci_low']:.3f}, {c['ci_high']:.3f}] | {c['verdict']} | {r['cell_ms']:.1f} / "
                   f"{r['reference_ms']:.1f} |")
    out += ["", "| model | step | precision | tokens/s (wall) | tokens/s (CPU time) | timed steps |",
            "|---|---|---|---|---|---|"]
    for t in report["tokens_per_s"]:
        out.append(f"| {t['model']} | {t['kind']} | {t['precision']} | {t['wall']:.0f} | {t['cpu']:.0f} | "
                   f"{t['steps']} |")
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.transformer_speed", description=__doc__.split("\n\n")[0])
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--context", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--steps", type=int, default=6, help="adjacent A/B pairs per ratio and round")
    ap.add_argument("--precisions", default="fp32,bf16", help="comma list of fp32, bf16 (bf16 autocast)")
    ap.add_argument("--markdown", help="also write the tables to this path")
    h.add_common_args(ap)
    ap.set_defaults(threads=1)
    args = ap.parse_args(argv)
    if args.quick:
        args.d_model, args.layers, args.context, args.batch, args.rounds, args.steps = 32, 4, 16, 4, 2, 2
    for name in ("d_model", "heads", "layers", "context", "batch", "rounds", "steps", "threads"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be a positive integer")
    precisions = [p for p in args.precisions.split(",") if p]
    if not precisions or any(p not in PRECISIONS for p in precisions):
        ap.error(f"--precisions takes a comma list of {', '.join(PRECISIONS)}")
    from horesnet import build_model

    torch.set_num_threads(args.threads)
    device = h.pick_device(args.device)
    vocab = 83
    common = dict(arch="transformer", d_model=args.d_model, heads=args.heads, num_classes=vocab,
                  context=args.context, causal=True, depth=2 * args.layers)
    torch.manual_seed(0)
    euler = build_model(**common).to(device)
    twin = torch_twin(euler, args.d_model, args.heads, args.layers).to(device)
    models = {"euler": euler, "torch": twin}
    for name, block, per_block in (("heun_layers", "heun", 2), ("rk4_layers", "rk4", 4)):
        if args.layers % per_block == 0:  # whole blocks only
            torch.manual_seed(0)
            models[name] = build_model(**common, layout="layer", block=block).to(device)
    params = {k: sum(p.numel() for p in m.parameters()) for k, m in models.items()}
    assert len(set(params.values())) == 1, params
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, vocab, (args.batch, args.context + 1), generator=g).to(device)
    inp, target = x[:, :-1], x[:, 1:].reshape(-1)
    diff = {}
    with torch.no_grad():
        euler.eval(), twin.eval()
        for p in precisions:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=p == "bf16"):
                diff[p] = float((euler(inp).float() - twin(inp).float()).abs().max())
    cells = {k: Cell(m, inp, target, device) for k, m in models.items()}

    jobs = []  # (cell, reference, kind, precision)
    for p in precisions:
        jobs += [("euler", "torch", "train", p), ("euler", "torch", "eval", p)]
    if "fp32" in precisions:
        jobs += [(c, "euler", "train", "fp32") for c in ("heun_layers", "rk4_layers") if c in cells]
    fns = {(c, k, p): (lambda c=c, k=k, p=p: getattr(cells[c], k)(p)) for a, b, k, p in jobs for c in (a, b)}
    for fn in fns.values():  # warm-up: allocator, first-call costs, autocast caches
        fn()
        fn()
    recs = {job: [] for job in jobs}  # per job, per round: [(A record, B record), ...]
    start = time.perf_counter()
    for rnd in range(args.rounds):
        for job in jobs:
            a, b, kind, p = job
            recs[job].append(h.alternating_pairs(lambda a=a, kind=kind, p=p: timed(fns[a, kind, p], device),
                                                 lambda b=b, kind=kind, p=p: timed(fns[b, kind, p], device),
                                                 args.steps))
        print(f"round {rnd + 1}/{args.rounds} ({time.perf_counter() - start:.0f} s): " + ", ".join(
            f"{a}/{b} {kind} {p} {statistics.median(ra['s'] / rb['s'] for ra, rb in recs[a, b, kind, p][-1]):.3f}"
            for a, b, kind, p in jobs), flush=True)

    rows = []
    for (a, b, kind, p), per_round in recs.items():
        row = {"cell": a, "reference": b, "kind": kind, "precision": p, "target": TARGET,
               "pairs": sum(len(r) for r in per_round)}
        for key, name in (("s", "wall"), ("cpu_s", "cpu")):
            per = [[ra[key] / rb[key] for ra, rb in rnd] for rnd in per_round]
            row[name] = summary([v for rnd in per for v in rnd], per)
        row["cell_ms"] = 1e3 * statistics.median(ra["s"] for rnd in per_round for ra, _ in rnd)
        row["reference_ms"] = 1e3 * statistics.median(rb["s"] for rnd in per_round for _, rb in rnd)
        load = [r["other_cpus"] for rnd in per_round for pair in rnd for r in pair if r["other_cpus"] is not None]
        row["other_cpus_median"] = statistics.median(load) if load else None
        row["times_s"] = [[[ra["s"], rb["s"], ra["cpu_s"], rb["cpu_s"]] for ra, rb in rnd] for rnd in per_round]
        rows.append(row)
        w, c = row["wall"], row["cpu"]
        print(f"{a}/{b} {kind} {p}: wall {w['ratio']:.3f} [{w['ci_low']:.3f}, {w['ci_high']:.3f}] {w['verdict']}; "
              f"CPU {c['ratio']:.3f} [{c['ci_low']:.3f}, {c['ci_high']:.3f}] {c['verdict']} (target {TARGET})",
              flush=True)

    steps: dict[tuple, list[dict]] = {}  # every timed step of a (model, kind, precision), whichever pair it was in
    for (a, b, kind, p), per_round in recs.items():
        for rnd in per_round:
            for ra, rb in rnd:
                steps.setdefault((a, kind, p), []).append(ra)
                steps.setdefault((b, kind, p), []).append(rb)
    tokens = args.batch * args.context
    tps = [{"model": m, "kind": k, "precision": p, "steps": len(v),
            "wall": tokens / statistics.median(r["s"] for r in v),
            "cpu": tokens / statistics.median(r["cpu_s"] for r in v)} for (m, k, p), v in steps.items()]
    report = {"benchmark": "transformer_speed", **h.environment(device), "cpu_bf16_instructions": cpu_has_bf16(),
              "model": {"d_model": args.d_model, "heads": args.heads, "layers": args.layers,
                        "residual_functions": 2 * args.layers, "context": args.context, "batch": args.batch,
                        "vocab": vocab, "parameters": params["euler"]},
              "rounds": args.rounds, "steps_per_round": args.steps, "pairs_per_ratio": args.rounds * args.steps,
              "max_abs_output_difference": diff,
              "method": "adjacent A/B steps, order alternating, each timed step after an untimed one of the same "
                        "model; median of pair ratios with a 95% order-statistics interval; cpu = process CPU "
                        "time per call (robust to other processes), wall = perf_counter",
              "ratios": rows, "tokens_per_s": tps, "wall_s": time.perf_counter() - start}
    h.save_report(report, args.out, args.quick)
    table = markdown(report)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table)
        print(f"wrote {args.markdown}")
    print("outputs agree to " + ", ".join(f"{v:.1e} ({p})" for p, v in diff.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
