"""Single-unit lesion study of ResNet-56: prefix reuse vs one full forward pass per lesion, same run.

    python benchmarks/lesion_speed.py [--images 500] [--block euler] [--depth 56]

Target: the prefix-reusing study costs <= 0.6x the naive one. Both give identical errors (checked here
too). Writes benchmarks/results/lesion_speed-<device>.json.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from horesnet import build_model
from horesnet.analysis import lesion_single


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--batch", type=int, default=250)
    ap.add_argument("--block", default="euler")
    ap.add_argument("--depth", type=int, default=56)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    model = build_model(block=args.block, depth=args.depth).to(device).eval()
    x = torch.randn(args.images, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (args.images,), device=device)
    data = [(x[i:i + args.batch], y[i:i + args.batch]) for i in range(0, args.images, args.batch)]
    times = {"reuse": [], "naive": []}
    results = {}
    for _ in range(args.repeats):  # interleaved so drift hits both equally
        for mode in ("naive", "reuse"):
            start = time.perf_counter()
            results[mode] = lesion_single(model, data, reuse_prefix=(mode == "reuse"))
            times[mode].append(time.perf_counter() - start)
    same = all(abs(a["error"] - b["error"]) < 1e-9 for a, b in zip(results["reuse"], results["naive"], strict=True))
    t_reuse, t_naive = min(times["reuse"]), min(times["naive"])
    out = {"benchmark": "lesion_speed", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
           "device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
           "model": f"{args.block}-{args.depth}", "lesions": len(results["reuse"]), "images": args.images,
           "seconds_reuse": round(t_reuse, 2), "seconds_naive": round(t_naive, 2),
           "ratio": round(t_reuse / t_naive, 3), "target_ratio": 0.6, "passes": t_reuse / t_naive <= 0.6,
           "identical_errors": same}
    path = Path(__file__).parent / "results" / f"lesion_speed-{device.type}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
