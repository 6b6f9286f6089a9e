"""Tables and figures of the converged study (experiments/converged.sh, docs/results.md "Converged study").

    python experiments/report_converged.py report RUNS OUT   # tables, curves, differences, cost -> OUT
    python experiments/report_converged.py extra  RUNS       # the runs of seeds 3 4 that the study adds (phase 5)

Every number is read from the runs' summary.json / metrics.csv (final epoch; nothing is selected on the test set).
Differences are ``horesnet.comparison.stats.welch`` over seeds: difference of the means, 95% CI, Welch p;
"significant" is p < 0.05, fewer than 3 seeds per arm is "not tested" (docs/design.md "Statistics").
"""

from __future__ import annotations

import sys
from pathlib import Path

from report import convergence_plot, degradation, epoch_curves, final, finished_runs, learned_steps, write_json

from horesnet.comparison.stats import Difference, format_difference, format_mean_std, welch
from horesnet.comparison.table import compare, mean_std
from horesnet.errors import ConfigError
from horesnet.runs import Summary, last_checkpoint, metrics_path, summary_path

DEPTHS = (56, 32)
PLANNED_SEEDS = 3  # seeds 0-2 of every arm (phase 5 adds seeds 3 and 4 to some)
EXTRA_SEEDS = (3, 4)
P_EXTRA = (0.01, 0.2)  # a key difference with p in this range gets seeds 3 and 4
# what each variant name means: the fit options that make it (the scale-matched Euler steps are in the run name)
OPTIONS = {"euler": "block=euler", "rk4": "block=rk4", "midpoint": "block=midpoint",
           "rk4-learnstep": "block=rk4 learn_step=true", "euler-zil": "block=euler zero_init_last=true",
           "rk4-zil": "block=rk4 zero_init_last=true"}
# the published Fashion-MNIST benchmark (the dataset's README, full 60k training set, with augmentation)
PUBLISHED = {"ResNet18": 0.949, "DenseNet-BC (768K params)": 0.954, "WRN-28-10": 0.959}


def controls(runs: dict, depth: int) -> dict[str, str]:
    """{scheme: its scale-matched Euler control variant name} at ``depth`` (euler-h<step>, the step from the run)."""
    steps = sorted({v for v, d in runs if d == depth and v.startswith("euler-h")}, key=lambda v: float(v[7:]))
    # the smaller step matches RK4 (residual scale 0.33-0.40), the larger midpoint (0.56-0.60)
    return dict(zip(("rk4", "midpoint"), steps, strict=False))


def key_pairs(runs: dict, depth: int) -> list[tuple[str, str, str]]:
    """(a, b, question) for the differences the study asks about at ``depth``."""
    c = controls(runs, depth)
    pairs = [("rk4", "euler", "RK4 vs Euler (raw)"), ("midpoint", "euler", "midpoint vs Euler (raw)")]
    if "rk4" in c:
        pairs += [("rk4", c["rk4"], "RK4 vs Euler at RK4's residual scale"),
                  (c["rk4"], "euler", "Euler at RK4's scale vs Euler (the scale effect)")]
    if "midpoint" in c:
        pairs += [("midpoint", c["midpoint"], "midpoint vs Euler at midpoint's residual scale")]
    pairs += [("rk4-learnstep", "rk4", "learnable steps vs fixed-step RK4"),
              ("euler-zil", "euler", "zero_init_last vs default init, Euler"),
              ("rk4-zil", "rk4", "zero_init_last vs default init, RK4"),
              ("rk4-zil", "euler-zil", "RK4 vs Euler, both zero_init_last")]
    return [(a, b, q) for a, b, q in pairs if (a, depth) in runs and (b, depth) in runs]


def finals(seeds: dict[int, Path]) -> list[dict]:
    return [final(r) for _, r in sorted(seeds.items())]


def cpus(run: Path) -> list[str]:
    """The CPU model(s) a run trained on (``summary.json``'s ``cpus``, several when it was resumed on another CPU);
    ``["not recorded"]`` for runs finished before the CPU was recorded."""
    s = Summary.load(summary_path(run))
    return list(s.cpus or ([s.cpu] if s.cpu else ["not recorded"]))


def run_rows(seeds: dict[int, Path]) -> list[dict]:
    """One row per finished run of an arm: seed, CPU(s), training throughput, wall time."""
    rows = []
    for seed, run in sorted(seeds.items()):
        s = Summary.load(summary_path(run))
        rows.append({"run": run.name, "seed": seed, "cpus": cpus(run), "images_per_sec": s.images_per_sec,
                     "wall_time_s": s.wall_time_s})
    return rows


def difference(runs, a, b, depth, key) -> Difference:
    return welch([f[key] for f in finals(runs[(a, depth)])], [f[key] for f in finals(runs[(b, depth)])])


def plateau(curve: list[float], last: int = 3) -> float:
    """Change of the training error over the last ``last`` epochs (points; ~0 on a plateau)."""
    return curve[-1] - curve[-1 - last] if len(curve) > last else float("nan")


def depth_report(runs: dict, depth: int, out: Path) -> dict:
    present = {v: seeds for (v, d), seeds in runs.items() if d == depth and not v.startswith(("plain", "euler-full"))}
    if not present:
        return {}
    dout = out / f"d{depth}"
    if len(present) >= 2:  # the comparison table needs two arms; the progress table below does not
        compare([str(p) for seeds in present.values() for p in seeds.values()], out=str(dout))
    dout.mkdir(parents=True, exist_ok=True)
    convergence_plot(present, dout / "convergence.png", depth)
    table = {}
    for v, seeds in sorted(present.items()):
        fs = finals(seeds)
        curves = [epoch_curves(r)["train_error"] for _, r in sorted(seeds.items())]
        kinds = sorted({c for r in seeds.values() for c in cpus(r)})
        row = {"seeds": sorted(seeds), "finished": len(seeds), "planned": max(PLANNED_SEEDS, len(seeds)),
               "cpu_kinds": kinds, "runs": run_rows(seeds)}
        for key in ("train_error", "val_error", "test_error", "wall_time_s"):
            row[key] = dict(zip(("mean", "std"), mean_std([f[key] for f in fs]), strict=True))
        row["train_error_change_last3"] = dict(zip(("mean", "std"), mean_std([plateau(c) for c in curves]),
                                                   strict=True))
        table[v] = row
    diffs = {q: {"a": a, "b": b, **{key: difference(runs, a, b, depth, key).as_dict()
                                    for key in ("test_error", "train_error")}}
             for a, b, q in key_pairs(runs, depth)}
    steps = learned_steps(present["rk4-learnstep"]) if "rk4-learnstep" in present else {}
    return {"variants": table, "differences": diffs, "learned_steps": steps}


def markdown(summary: dict) -> str:
    lines = [f"{summary.get('finished_runs', 0)} run(s) finished"
             + "".join(f"; in progress: {r['run']} ({r['epochs_done']} epoch(s) done)"
                       for r in summary.get("in_progress", [])) + ".", ""]
    for depth, rep in summary.get("depths", {}).items():
        lines += [f"## Depth {depth}", "",
                  "| variant | runs finished | final train error % | Δ train error, last 3 epochs | val error % | "
                  "test error % | wall time s | CPU kinds |", "|---|---|---|---|---|---|---|---|"]
        for v, r in rep["variants"].items():
            f = lambda k, r=r: format_mean_std(r[k]["mean"], r[k]["std"])  # noqa: E731
            lines.append(f"| {v} | {r['finished']} of {r['planned']} | {f('train_error')} | "
                         f"{f('train_error_change_last3')} | {f('val_error')} | {f('test_error')} | "
                         f"{r['wall_time_s']['mean']:.0f} | {len(r['cpu_kinds'])} |")
        lines += ["", "± is the standard deviation over seeds (undefined for one seed). Wall time depends on the CPU "
                  "and on the machine's load; it is not a property of the scheme.", "",
                  "Runs and the CPU each trained on:", "", "| run | CPU | img/s | wall time s |", "|---|---|---|---|"]
        lines += [f"| {x['run']} | {' → '.join(x['cpus'])} | {x['images_per_sec'] or float('nan'):.1f} | "
                  f"{x['wall_time_s'] or float('nan'):.0f} |" for r in rep["variants"].values() for x in r["runs"]]
        one_kind = [v for v, r in rep["variants"].items() if len(r["cpu_kinds"]) == 1 and r["finished"] > 1]
        lines += ["", "CPU kinds: " + (f"every run of {', '.join(one_kind)} came from one CPU kind (each arm's "
                                       "spread holds no between-CPU variation)."
                                       if one_kind else "no arm with two or more runs came from a single CPU kind.")]
        for key, what in (("test_error", "test error"), ("train_error", "final training error")):
            lines += ["", f"Differences in {what} (points, a − b, 95% CI, Welch p):", ""]
            lines += [f"- {q} ({d['a']} − {d['b']}): {format_difference(Difference(**d[key]), 2, verdict=True)}"
                      for q, d in rep["differences"].items()] or ["- none yet: no pair of the study's arms has a "
                                                                  "finished run each"]
        lines.append("")
    if "full_split" in summary:
        r = summary["full_split"]
        lines += ["## ResNet-20 on the full training split", "",
                  f"test accuracy {r['test_accuracy']:.4f} (seed {r['seed']}, {r['epochs']} epochs, "
                  f"{r['wall_time_s']:.0f} s); published (full 60k, augmentation): "
                  + ", ".join(f"{k} {v}" for k, v in PUBLISHED.items()), ""]
    return "\n".join(lines) + "\n"


def in_progress(pool: Path) -> list[dict]:
    """Runs with a checkpoint and no finished summary: name and epochs done so far."""
    rows = []
    for run in sorted(p for p in pool.glob("*") if last_checkpoint(p).is_file()):
        if _finished(run):
            continue
        rows.append({"run": run.name, "epochs_done": len(epoch_curves(run)["train_error"])
                     if metrics_path(run).is_file() else 0})
    return rows


def _finished(run: Path) -> bool:
    try:
        return Summary.load(summary_path(run)).status == "finished"
    except ConfigError:  # no summary yet (or an unreadable one)
        return False


def report(pool: Path, out: Path) -> None:
    runs = finished_runs(pool)
    if not runs:
        sys.exit(f"report_converged.py: no finished runs under {pool}")
    out.mkdir(parents=True, exist_ok=True)
    summary = {"depths": {d: rep for d in DEPTHS if (rep := depth_report(runs, d, out))},
               "finished_runs": sum(len(seeds) for seeds in runs.values()), "in_progress": in_progress(pool)}
    if any(v == "plain" for v, _ in runs):
        degradation(pool, out / "degradation")
    if ("euler-full", 20) in runs:
        run = next(iter(runs[("euler-full", 20)].values()))
        s = Summary.load(summary_path(run))
        summary["full_split"] = {"test_accuracy": s.test["test/acc1"], "seed": s.config.get("seed", 0),
                                 "epochs": len(epoch_curves(run)["train_error"]), "wall_time_s": s.wall_time_s,
                                 "published": PUBLISHED}
    write_json(out / "converged.json", summary)
    (out / "converged.md").write_text(markdown(summary))
    print((out / "converged.md").read_text())


def extra(pool: Path) -> None:
    """Print ``name options`` for seeds 3 and 4 of both arms of every key difference (test error) whose p lies in
    P_EXTRA, for runs not yet trained."""
    runs = finished_runs(pool)
    wanted = set()
    for depth in DEPTHS:
        for a, b, _ in key_pairs(runs, depth):
            p = difference(runs, a, b, depth, "test_error").p
            if p == p and P_EXTRA[0] <= p <= P_EXTRA[1]:
                wanted |= {(a, depth), (b, depth)}
    for variant, depth in sorted(wanted):
        opts = (f"block=euler step={variant[7:]}" if variant.startswith("euler-h") else OPTIONS[variant])
        for seed in EXTRA_SEEDS:
            print(f"{variant}-d{depth}-s{seed} {opts} depth={depth} seed={seed}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "report":
        report(Path(sys.argv[2]), Path(sys.argv[3]))
    elif len(sys.argv) == 3 and sys.argv[1] == "extra":
        extra(Path(sys.argv[2]))
    else:
        sys.exit("usage: python experiments/report_converged.py report RUNS OUT | extra RUNS")
