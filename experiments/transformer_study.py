"""A small char-level study of schemes over Transformer residual functions (docs/transformers.md, docs/results.md).

4-layer pre-norm Transformers of width 128 on Shakespeare (split by plays), 3 seeds per arm, the same data, recipe
and number of training steps; validation bits per character at the final step:

- euler:         the standard pre-norm Transformer (layout=alternate, 8 residual functions)
- heun_layers:   RK2 (Heun) over whole layers, G(x) = layer(x) - x (layout=layer, depth=8: 2 Heun blocks)
- heun_control:  its matched Euler control (layout=layer, block=euler, step=0.5: residual scale 0.5 as Heun's)
- macaron:       Macaron (Strang splitting, MLP/2, attention, MLP/2) at 4 layers with MLP ratio 2: the same
                 parameters as the others (Lu et al. 2019 halve the FFN), 12 residual-function evaluations
- lm:            LM-ResNet's two-step scheme (block=lm, k learned from -0.05) over the same 8 alternating
                 attention/MLP units, one unit per step (docs/multistep.md; the stage starts from the embedding,
                 x_-1 = x_0); +1 parameter (k)
- lm_control:    its matched Euler control: block=euler, step = lm's residual scale at initialisation
- momentum:      Momentum ResNet (block=momentum, gamma = 0.9 fixed, v_0 = 0) over the same 8 units
- momentum_control: its matched Euler control: block=euler, step = momentum's residual scale (0.3593)

The controls' steps are the library's own: ``matched_step`` builds the arm's network and takes
``horesnet.comparison.variants.control_step(residual_scale(model)["mean"])`` -- the mean over units of each unit's
weight dx_T/dF_s at the initial coefficients, rounded to 4 decimals -- which is the step ``compare`` names for the
matched control and ``python -m horesnet.info arch=transformer block=momentum depth=8 d_model=128 heads=4
num_classes=83 context=32 causal=true`` prints ("its matched Euler control: block=euler step=0.3593"; lm: 1.0457).

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


def matched_step(*options: str) -> str:
    """The step of the matched Euler control of the arm ``options`` (as ``compare`` and ``info`` compute it)."""
    from horesnet import build_model
    from horesnet.comparison.variants import control_step
    from horesnet.models.scale import residual_scale

    given = dict(o.split("=", 1) for o in options)
    model = build_model(arch="transformer", d_model=128, heads=4, num_classes=83, context=SEQ, causal=True,
                        depth=int(given.pop("depth")), block=given.pop("block"),
                        **{k: float(v) for k, v in given.items()})
    return f"{control_step(residual_scale(model)['mean']):g}"


LM = ("depth=8", "block=lm")
MOMENTUM = ("depth=8", "block=momentum", "coefficient=0.9")
ARMS = {
    "euler": ["depth=8"],
    "heun_layers": ["depth=8", "layout=layer", "block=heun"],
    "heun_control": ["depth=8", "layout=layer", "block=euler", "step=0.5"],
    "macaron": ["depth=12", "layout=macaron", "mlp_ratio=2"],
    "lm": list(LM),
    "lm_control": ["depth=8", "block=euler", f"step={matched_step(*LM)}"],
    "momentum": list(MOMENTUM),
    "momentum_control": ["depth=8", "block=euler", f"step={matched_step(*MOMENTUM)}"],
}
# the pairs tested (Holm-Bonferroni over all of them): each arm against Euler, each scheme against its control
PAIRS = [(arm, "euler") for arm in ARMS if arm != "euler"] + [
    ("heun_layers", "heun_control"), ("lm", "lm_control"), ("momentum", "momentum_control")]


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
    from horesnet.comparison.stats import format_difference, holm, welch

    rows, values = [], {}
    for arm in ARMS:
        runs = [json.loads(p.read_text()) for p in sorted(OUT.glob(f"{arm}-s*/summary.json"))]
        vals = [r["val"]["val/bpc"] for r in runs if r.get("status") == "finished"]
        values[arm] = vals
        if not runs:
            continue
        m = runs[0]["model"]
        spread = f"± {statistics.stdev(vals):.3f}" if len(vals) > 1 else "(1 seed)"
        # no throughput column: the runs share 2 cores with other jobs at very different loads (docs/results.md)
        rows.append(f"| {arm} | {' '.join(ARMS[arm])} | {m['params']:,} | {m['residual_scale']['mean']:.3g} | "
                    f"{statistics.fmean(vals):.3f} {spread} | {len(vals)} |")
    lines = ["| arm | options | params | residual scale | val bits/char (mean ± sd) | seeds |",
             "|---|---|---|---|---|---|", *rows, ""]
    tested = [(a, b, welch(values[a], values[b])) for a, b in PAIRS if values.get(a) and values.get(b)]
    adjusted = holm([d.p for _, _, d in tested])
    for (a, b, d), p_holm in zip(tested, adjusted, strict=True):
        verdict = "significant" if p_holm < 0.05 else "not significant"
        lines.append(f"- {a} − {b}: {format_difference(d, digits=3)} bits/char; Holm over {len(tested)} pairs: "
                     f"p={p_holm:.3f}, {verdict}")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:] == ["run"]:
        run()
    elif sys.argv[1:] == ["report"]:
        print(report())
    else:
        sys.exit(__doc__)
