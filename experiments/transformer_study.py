"""A small char-level study of schemes over Transformer residual functions (docs/transformers.md, docs/results.md).

4-layer pre-norm Transformers of width 128 on Shakespeare (split by plays), 3 seeds per arm, the same data, recipe
and number of training steps; validation bits per character at the final step:

- euler:         the standard pre-norm Transformer (layout=alternate, 8 residual functions)
- heun_layers:   RK2 (Heun) over whole layers, G(x) = layer(x) - x (layout=layer, depth=8: 2 Heun blocks)
- heun_control:  its matched Euler control (layout=layer, block=euler, step=0.5: residual scale 0.5 as Heun's)
- macaron:       Macaron (Strang splitting, MLP/2, attention, MLP/2) at 4 layers with MLP ratio 2: the same
                 parameters as the others (Lu et al. 2019 halve the FFN), 12 residual-function evaluations

    nice -n 19 python experiments/transformer_study.py run      # trains what is missing (resumable by run)
    python experiments/transformer_study.py report              # the table (markdown) from the summaries
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "experiments" / "results" / "transformer_study"
SEEDS = (0, 1, 2)
STEPS, BATCH, SEQ = 150, 16, 32  # 2 shared CPU cores: an early-training comparison
COMMON = ["arch=transformer", "data=shakespeare", "d_model=128", "heads=4", f"data.seq_len={SEQ}",
          f"data.batch_size={BATCH}", f"data.limit_train={STEPS * BATCH}", "data.limit_val=512", "data.limit_test=512",
          "optim=transformer", "optim.warmup_steps=30", "trainer.max_epochs=1", "logger=csv",
          "trainer.enable_progress_bar=false"]
ARMS = {
    "euler": ["depth=8"],
    "heun_layers": ["depth=8", "layout=layer", "block=heun"],
    "heun_control": ["depth=8", "layout=layer", "block=euler", "step=0.5"],
    "macaron": ["depth=12", "layout=macaron", "mlp_ratio=2"],
}


def command(arm: str, seed: int) -> list[str]:
    return [sys.executable, "-m", "horesnet.fit", *COMMON, *ARMS[arm], f"seed={seed}",
            f"hydra.run.dir={OUT / f'{arm}-s{seed}'}"]


def run() -> None:
    for seed in SEEDS:
        for arm in ARMS:
            if (OUT / f"{arm}-s{seed}" / "summary.json").is_file():
                continue
            print(" ".join(command(arm, seed)[1:]), flush=True)
            subprocess.run(command(arm, seed), cwd=ROOT, check=False)


def report() -> str:
    from horesnet.comparison.stats import format_difference, welch

    rows, values = [], {}
    for arm in ARMS:
        runs = [json.loads(p.read_text()) for p in sorted(OUT.glob(f"{arm}-s*/summary.json"))]
        vals = [r["val"]["val/bpc"] for r in runs if r.get("status") == "finished"]
        values[arm] = vals
        if not runs:
            continue
        m = runs[0]["model"]
        spread = f"± {statistics.stdev(vals):.3f}" if len(vals) > 1 else "(1 seed)"
        tps = statistics.fmean(r["images_per_sec"] for r in runs)
        rows.append(f"| {arm} | {' '.join(ARMS[arm])} | {m['params']:,} | {m['residual_scale']['mean']:.3g} | "
                    f"{statistics.fmean(vals):.3f} {spread} | {len(vals)} | {tps:.0f} |")
    lines = ["| arm | options | params | residual scale | val bits/char (mean ± sd) | seeds "
             "| train tokens/s (wall, shared machine) |",
             "|---|---|---|---|---|---|---|", *rows, ""]
    for arm in ARMS:
        if arm != "euler" and values.get(arm) and values.get("euler"):
            diff = format_difference(welch(values[arm], values["euler"]), digits=3)
            lines.append(f"- {arm} − euler: {diff} bits/char")
    if values.get("heun_layers") and values.get("heun_control"):
        diff = format_difference(welch(values["heun_layers"], values["heun_control"]), digits=3)
        lines.append(f"- heun_layers − heun_control: {diff} bits/char")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:] == ["run"]:
        run()
    elif sys.argv[1:] == ["report"]:
        print(report())
    else:
        sys.exit(__doc__)
