"""Single-unit lesion study: prefix reuse vs one full forward pass per lesion, interleaved in the same run.

    python -m benchmarks.lesion_speed [--images 500] [--block euler] [--depth 56] [--quick]

Each whole study is one harness step (``benchmarks/_harness.py``); the two modes alternate over rotated rounds.
Target: the prefix-reusing study costs <= 0.6x the naive one; both must give identical errors (checked).
Writes ``benchmarks/results/lesion_speed-<device>.json``.
"""

from __future__ import annotations

import argparse

import torch

from . import _harness as h

TARGET = 0.6


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.lesion_speed", description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--batch", type=int, default=250)
    ap.add_argument("--block", default="euler")
    ap.add_argument("--depth", type=int, default=56)
    ap.add_argument("--rounds", type=int, default=2, help="rounds of one study per mode")
    h.add_common_args(ap)
    args = ap.parse_args(argv)
    if args.quick:
        args.images, args.batch, args.depth, args.rounds = 32, 32, 20, 1
    from horesnet import build_model, list_blocks
    from horesnet.analysis import lesion_single

    if args.block not in list_blocks():
        ap.error(f"--block: unknown {args.block}; choose from {', '.join(list_blocks())}")
    torch.set_num_threads(args.threads)
    device = h.pick_device(args.device)
    torch.manual_seed(0)
    model = build_model(block=args.block, depth=args.depth).to(device).eval()
    x = torch.randn(args.images, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (args.images,), device=device)
    data = [(x[i:i + args.batch], y[i:i + args.batch]) for i in range(0, args.images, args.batch)]
    results = {}

    def study(mode):
        def run():
            results[mode] = lesion_single(model, data, reuse_prefix=mode == "reuse")
        return run

    steppers = {m: h.Stepper(study(m), device, settle=0) for m in ("naive", "reuse")}
    res = h.compare(steppers, args.rounds, 1, 0, args.quick)
    same = all(abs(a["error"] - b["error"]) < 1e-9 for a, b in zip(results["reuse"], results["naive"], strict=True))
    reuse, naive = res["reuse"], res["naive"]
    ratio = reuse["median_s"] / naive["median_s"]
    report = {"benchmark": "lesion_speed", **h.environment(device), "model": f"{args.block}-{args.depth}",
              "lesions": len(results["reuse"]), "images": args.images, "rounds": args.rounds,
              "reuse": reuse, "naive": naive,
              "ratio": ratio, "ratio_paired": h.paired_ratio(reuse["rounds"], naive["rounds"]),
              "target_ratio_max": TARGET, "passes": ratio <= TARGET, "identical_errors": same}
    h.save_report(report, args.out, args.quick)
    print(f"{report['lesions']} lesions: reuse {reuse['median_s']:.2f} s, naive {naive['median_s']:.2f} s, "
          f"ratio {ratio:.3f} (target <= {TARGET}); identical errors: {same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
