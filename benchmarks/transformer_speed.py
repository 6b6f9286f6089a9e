"""Transformer stacks: horesnet's Euler stack vs torch's own layers, RK2 over layers vs Euler, char-level tokens/s.

    python -m benchmarks.transformer_speed [--d-model 128] [--layers 4] [--context 64] [--batch 32] [--quick]

Steppers, interleaved in rotated rounds of one run (``benchmarks/_harness.py``), fp32:

- ``euler_train`` / ``torch_train``: one AdamW training step (forward, next-token loss, backward, update) of the
  causal Euler Transformer (layout=alternate) and of the same network built from ``nn.TransformerEncoderLayer
  (norm_first=True, batch_first=True, dropout=0)`` with the weights copied in (its outputs are checked equal);
- ``euler_eval`` / ``torch_eval``: one forward pass without autograd;
- ``heun_layers_train``: RK2 (Heun) over whole layers at the same unit count (layout=layer, same parameters).

Reports medians, the ratios to the torch stack and to Euler, and predicted tokens per second; no timed assertion.
Writes ``benchmarks/results/transformer_speed-<device>.json``.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn

from . import _harness as h


class TorchStack(nn.Module):
    """Embedding and positions of a horesnet Transformer, torch's layers, the final LayerNorm and head."""

    def __init__(self, model, layers: list[nn.TransformerEncoderLayer]):
        super().__init__()
        self.model, self.layers = model, nn.ModuleList(layers)

    def forward(self, x):
        h = self.model.forward_stem(x)
        mask = nn.Transformer.generate_square_subsequent_mask(h.shape[1], device=h.device, dtype=h.dtype)
        for layer in self.layers:
            h = layer(h, src_mask=mask, is_causal=True)
        return self.model.fc(self.model.final(h))


def torch_twin(model, d: int, heads: int, layers: int):
    from horesnet.nn.transformer import copy_to_torch_layer

    units = [u for _, u, _ in model.units()]
    out = []
    for i in range(layers):
        layer = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, activation="gelu", batch_first=True,
                                           norm_first=True)
        copy_to_torch_layer(units[2 * i], units[2 * i + 1], layer)
        out.append(layer)
    return TorchStack(model, out)


def cpu_medians(steppers: dict, calls: int) -> dict[str, float]:
    """Median process CPU time of one call of each stepper, one thread, the steppers called in turn."""
    import statistics
    import time

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        times: dict[str, list[float]] = {k: [] for k in steppers}
        for name in steppers:  # a warm-up call each
            steppers[name].fn()
        for _ in range(calls):
            for name, stepper in steppers.items():
                start = time.process_time()
                stepper.fn()
                times[name].append(time.process_time() - start)
    finally:
        torch.set_num_threads(threads)
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.transformer_speed", description=__doc__.split("\n\n")[0])
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--context", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5)
    h.add_common_args(ap)
    args = ap.parse_args(argv)
    if args.quick:
        args.d_model, args.layers, args.context, args.batch, args.rounds, args.steps = 32, 2, 16, 4, 1, 2
    for name in ("d_model", "heads", "layers", "context", "batch", "rounds", "steps"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be a positive integer")
    from horesnet import build_model

    torch.set_num_threads(args.threads)
    device = h.pick_device(args.device)
    vocab = 83
    common = dict(arch="transformer", d_model=args.d_model, heads=args.heads, num_classes=vocab,
                  context=args.context, causal=True, depth=2 * args.layers)
    torch.manual_seed(0)
    euler = build_model(**common).to(device)
    twin = torch_twin(euler, args.d_model, args.heads, args.layers).to(device)
    heun = build_model(**common, layout="layer", block="heun").to(device) if args.layers % 2 == 0 else None
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, vocab, (args.batch, args.context + 1), generator=g).to(device)
    inp, target = x[:, :-1], x[:, 1:].reshape(-1)
    with torch.no_grad():
        euler.eval(), twin.eval()
        diff = float((euler(inp) - twin(inp)).abs().max())

    def train_step(model):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        model.train()

        def step():
            loss = F.cross_entropy(model(inp).flatten(0, 1), target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return step

    def eval_step(model):
        def step():
            model.eval()
            with torch.no_grad():
                model(inp)
        return step

    steppers = {"euler_train": h.Stepper(train_step(euler), device), "torch_train": h.Stepper(train_step(twin), device),
                "euler_eval": h.Stepper(eval_step(euler), device), "torch_eval": h.Stepper(eval_step(twin), device)}
    if heun is not None:
        steppers["heun_layers_train"] = h.Stepper(train_step(heun), device)
    res = h.compare(steppers, args.rounds, args.steps, 1, args.quick)
    med = {k: v["median_s"] for k, v in res.items()}
    cpu = cpu_medians(steppers, args.rounds * args.steps)
    tokens = args.batch * args.context
    report = {"benchmark": "transformer_speed", **h.environment(device),
              "model": {"d_model": args.d_model, "heads": args.heads, "layers": args.layers,
                        "context": args.context, "batch": args.batch},
              "max_abs_output_difference": diff, "median_s": med,
              "ratio_to_torch": {"train": med["euler_train"] / med["torch_train"],
                                 "eval": med["euler_eval"] / med["torch_eval"]},
              "heun_layers_to_euler_train": med["heun_layers_train"] / med["euler_train"] if heun else None,
              "tokens_per_s": {k: tokens / v for k, v in med.items()},
              "cpu_time": {"note": "process CPU time per call, one thread, calls interleaved: robust to other "
                                   "processes on a shared machine, unlike the wall-clock medians", "median_s": cpu,
                           "ratio_to_torch": {"train": cpu["euler_train"] / cpu["torch_train"],
                                              "eval": cpu["euler_eval"] / cpu["torch_eval"]},
                           "heun_layers_to_euler_train": cpu["heun_layers_train"] / cpu["euler_train"]
                           if heun else None},
              **{k: {kk: vv for kk, vv in v.items()} for k, v in res.items()}}
    h.save_report(report, args.out, args.quick)
    c = report["cpu_time"]
    print(f"CPU time, one thread: horesnet/torch train {c['ratio_to_torch']['train']:.2f}x, eval "
          f"{c['ratio_to_torch']['eval']:.2f}x; Heun over layers/Euler (train) "
          f"{h.fmt(c['heun_layers_to_euler_train'], '.2f')}x")
    print(f"outputs agree to {diff:.1e}; horesnet/torch: train {report['ratio_to_torch']['train']:.2f}x, eval "
          f"{report['ratio_to_torch']['eval']:.2f}x; Heun over layers/Euler (train): "
          f"{h.fmt(report['heun_layers_to_euler_train'], '.2f')}x; Euler train "
          f"{report['tokens_per_s']['euler_train']:.0f} tokens/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
