"""Tables and figures for the studies of docs/results.md, from the finished runs of one pool (experiments/common.sh).

    python experiments/report.py degradation   RUNS OUT   # He et al. 2015 Fig. 1/6: plain vs residual, 20 vs 56
    python experiments/report.py ho_comparison RUNS OUT   # Luo et al.: euler/midpoint/rk4 at equal depth

Every number is read from the runs' summary.json, metrics.csv and analysis/robustness.csv; nothing is typed in.
Variants with fewer seeds than the others are reported with the seeds they have (the table says how many).
Every difference between variants is ``horesnet.comparison.stats.welch`` (difference of means, 95% CI, Welch p, verdict;
docs/design.md "Statistics").
"""

from __future__ import annotations

import csv
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from horesnet.comparison.stats import Difference, format_difference, format_mean_std, welch  # noqa: E402
from horesnet.comparison.table import compare, differences, mean_std  # noqa: E402
from horesnet.files import json_safe, load_tensors  # noqa: E402
from horesnet.runs import Summary, analysis_dir, find_runs, last_checkpoint, metrics_path, summary_path  # noqa: E402

RUN_NAME = re.compile(r"^(?P<variant>.+)-d(?P<depth>\d+)-s(?P<seed>\d+)$")


def finished_runs(pool: Path) -> dict[tuple[str, int], dict[int, Path]]:
    """{(variant, depth): {seed: run folder}} for every run in the pool that wrote summary.json."""
    runs: dict[tuple[str, int], dict[int, Path]] = defaultdict(dict)
    for summary in find_runs([pool]):
        m = RUN_NAME.match(summary.parent.name)
        if m and summary.parent.parent == pool and Summary.load(summary).status == "finished":
            runs[(m["variant"], int(m["depth"]))][int(m["seed"])] = summary.parent
    return runs


def epoch_curves(run: Path) -> dict[str, list[float]]:
    """Per-epoch training error (augmented batches, train mode) and validation error, in %, from metrics.csv."""
    train, val = {}, {}
    with open(metrics_path(run)) as f:
        for row in csv.DictReader(f):
            if row.get("epoch") in (None, ""):
                continue
            if row.get("train/acc1"):
                train[int(row["epoch"])] = 100 * (1 - float(row["train/acc1"]))
            if row.get("val/acc1"):
                val[int(row["epoch"])] = 100 * (1 - float(row["val/acc1"]))
    return {"train_error": [train[k] for k in sorted(train)], "val_error": [val[k] for k in sorted(val)]}


def band(ax, curves: list[list[float]], label: str, style: str = "-", color=None) -> None:
    """Mean curve with a ±1 std band over seeds (epochs counted from 1)."""
    n = min(len(c) for c in curves)
    if n == 0:
        return
    stats = [mean_std([c[i] for c in curves]) for i in range(n)]
    x = list(range(1, n + 1))
    ax.set_xticks(x)
    line = ax.plot(x, [m for m, _ in stats], style, label=f"{label} ({len(curves)} seed(s))", color=color)[0]
    ax.fill_between(x, [m - s for m, s in stats], [m + s for m, s in stats], alpha=0.15, color=line.get_color())


def final(run: Path) -> dict:
    s = Summary.load(summary_path(run))
    curves = epoch_curves(run)
    return {"test_error": 100 * (1 - s.test["test/acc1"]), "val_error": 100 * (1 - s.val["val/acc1"]),
            "train_error": curves["train_error"][-1], "train_error_epoch1": curves["train_error"][0],
            "params": s.model["params"],
            "wall_time_s": s.wall_time_s}


def write_json(path: Path, obj) -> None:
    """Strict JSON: NaN (the spread of a single seed, an untested difference) becomes null."""
    path.write_text(json.dumps(json_safe(obj), indent=2, allow_nan=False) + "\n")


def difference_lines(title: str, diffs: dict[str, dict], digits: int = 2) -> list[str]:
    """Markdown lines ``- a − b: +8.26 [+5.10, +11.42], p=0.003 (n=3/3), significant`` for welch dicts."""
    return ["", title, ""] + [f"- {name}: {format_difference(Difference(**d), digits, verdict=True)}"
                              for name, d in diffs.items()]


DEGRADATION_NETS = {("plain", 20): "plain-20", ("plain", 56): "plain-56", ("euler", 20): "ResNet-20",
                    ("euler", 56): "ResNet-56"}
# a − b; the last pair is study 1's step=0.25 control (not a row of the table) against ResNet-20
DEGRADATION_PAIRS = [("plain-56", "plain-20"), ("ResNet-56", "ResNet-20"), ("plain-56", "ResNet-56"),
                     ("plain-20", "ResNet-20"), ("ResNet-56 step=0.25", "ResNet-20")]
DEGRADATION_EXTRA = {("euler-h0.25", 56): "ResNet-56 step=0.25"}


def degradation_differences(per_net: dict[str, list[dict]]) -> dict[str, dict]:
    """{"a − b": {metric: welch dict}} for the pairs of DEGRADATION_PAIRS whose runs exist."""
    return {f"{a} − {b}": {key: welch([f[key] for f in per_net[a]], [f[key] for f in per_net[b]]).as_dict()
                          for key in ("train_error_epoch1", "train_error", "val_error", "test_error")}
            for a, b in DEGRADATION_PAIRS if a in per_net and b in per_net}


def degradation(pool: Path, out: Path) -> None:
    runs = finished_runs(pool)
    rows, curves, per_net = [], {}, {}
    for (variant, depth), name in (DEGRADATION_NETS | DEGRADATION_EXTRA).items():
        seeds = runs.get((variant, depth), {})
        if not seeds:
            continue
        finals = [final(r) for _, r in sorted(seeds.items())]
        per_net[name] = finals
        if (variant, depth) not in DEGRADATION_NETS:
            continue
        curves[name] = [epoch_curves(r) for r in seeds.values()]
        row = {"net": name, "seeds": sorted(seeds), "params": finals[0]["params"]}
        for key in ("train_error", "val_error", "test_error", "wall_time_s"):
            row[key + "_mean"], row[key + "_std"] = mean_std([f[key] for f in finals])
        rows.append(row)
    if not rows:
        sys.exit(f"report.py: no finished degradation runs under {pool}")
    out.mkdir(parents=True, exist_ok=True)
    lines = ["| net | params | final train error % | val error % | test error % | wall s | seeds |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        f = lambda k, r=r: format_mean_std(r[f"{k}_mean"], r[f"{k}_std"])  # noqa: E731
        lines.append(f"| {r['net']} | {r['params']:,} | {f('train_error')} | {f('val_error')} | {f('test_error')} | "
                     f"{r['wall_time_s_mean']:.0f} | {len(r['seeds'])} |")
    diffs = degradation_differences(per_net)
    for key, what in (("train_error_epoch1", "training error after epoch 1"), ("train_error", "final training error"),
                      ("test_error", "test error")):
        lines += difference_lines(f"Differences in {what} (points, a − b):", {k: d[key] for k, d in diffs.items()})
    (out / "degradation.md").write_text("\n".join(lines) + "\n")
    write_json(out / "degradation.json", rows)
    write_json(out / "degradation_differences.json", diffs)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    colors = {"plain-20": "tab:orange", "plain-56": "tab:red", "ResNet-20": "tab:cyan", "ResNet-56": "tab:blue"}
    for ax, key, title in [(axes[0], "train_error", "training error (augmented batches)"),
                           (axes[1], "val_error", "validation error")]:
        for name, cs in curves.items():
            band(ax, [c[key] for c in cs], name, color=colors.get(name))
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("error (%)")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(out / "degradation.png", dpi=120)
    plt.close(fig)
    print((out / "degradation.md").read_text())


HO_VARIANTS = ("euler", "midpoint", "rk4", "rk4-learnstep", "euler-h0.25", "euler-h0.5")


CONTROLS = {"euler-h0.25": ("rk4", "rk4-learnstep"), "euler-h0.5": ("midpoint",)}


def ho_comparison(pool: Path, out: Path) -> None:
    runs = finished_runs(pool)
    previous = json.loads((out / "ho_comparison.json").read_text()) if (out / "ho_comparison.json").is_file() else {}
    depths = sorted({d for (v, d) in runs if v in HO_VARIANTS and v != "euler"})
    summary = {}
    for depth in depths:
        present = {v: runs[(v, depth)] for v in HO_VARIANTS if (v, depth) in runs}
        if len(present) < 2:
            continue
        dout = out / f"d{depth}"
        rows, _, _ = compare([str(p) for seeds in present.values() for p in seeds.values()], out=str(dout))
        acc = {v: [100 * Summary.load(summary_path(p)).test["test/acc1"]
                   for _, p in sorted(seeds.items())] for v, seeds in present.items()}
        key = f"depth {depth}"
        summary[key] = {   # every difference is a − b = the named variant − the one after "vs_"
            "test_accuracy": {v: dict(zip(("mean", "std"), mean_std(a), strict=True)) | {"seeds": sorted(present[v])}
                              for v, a in acc.items()},
            "vs_euler": {v: welch(a, acc["euler"]).as_dict() for v, a in acc.items()
                         if v != "euler" and "euler" in acc},
        }
        for control, schemes in CONTROLS.items():   # Euler with the scheme's mean output weight per unit
            if control in acc:
                summary[key][f"vs_{control}"] = {v: welch(acc[v], acc[control]).as_dict() for v in schemes if v in acc}
        summary[key]["all_pairs"] = differences(rows)   # horesnet.compare's labels, as in d<depth>/comparison.md
        if "rk4-learnstep" in present:
            steps = learned_steps(present["rk4-learnstep"])
            if not steps and previous.get(key, {}).get("learned_steps"):
                print(f"report.py: no checkpoints under {pool} (git-ignored); learned_steps of {key} kept from "
                      f"{out / 'ho_comparison.json'}", file=sys.stderr)
                steps = previous[key]["learned_steps"]
            summary[key]["learned_steps"] = steps
        summary[key]["training_error_vs_euler"] = training_error_differences(present)
        robustness_table(present, dout, summary[key])
        convergence_plot(present, dout / "convergence.png", depth)
    if not summary:
        sys.exit(f"report.py: no finished HO comparison runs under {pool}")
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "ho_comparison.json", summary)
    print(json.dumps(summary, indent=2))


def training_error_differences(present: dict[str, dict[int, Path]]) -> dict:
    """{variant: [welch dict of training error (variant − euler) at epoch 1, 2, ...]} (the convergence curves)."""
    if "euler" not in present:
        return {}
    curves = {v: [epoch_curves(r)["train_error"] for _, r in sorted(seeds.items())] for v, seeds in present.items()}
    epochs = min(len(c) for cs in curves.values() for c in cs)
    return {v: [welch([c[e] for c in cs], [c[e] for c in curves["euler"]]).as_dict() | {"epoch": e + 1}
                for e in range(epochs)] for v, cs in curves.items() if v != "euler"}


def learned_steps(seeds: dict[int, Path]) -> dict:
    """The step h each RK4 block learned (initialised to 1.0), per seed, read from checkpoints/last.ckpt."""
    steps = {}
    for seed, run in seeds.items():
        ckpt = last_checkpoint(run)
        if ckpt.is_file():
            state = load_tensors(ckpt, "checkpoint")["state_dict"]
            steps[seed] = {k.removeprefix("model."): round(float(v), 4) for k, v in state.items()
                           if k.endswith(".step") and v.numel() == 1}
    return steps


def percent_factor(folder: Path, study: str) -> float:
    """100 for a study's table holding fractions (analysis.json's ``records_version`` 2, docs/analysis.md "Units"),
    1 for one written in percent by an older horesnet (no ``records_version``)."""
    from horesnet.analysis.progress import MANIFEST, RECORDS_VERSION

    manifest = folder / MANIFEST
    entry = json.loads(manifest.read_text()).get("studies", {}).get(study, {}) if manifest.is_file() else {}
    return 100.0 if isinstance(entry, dict) and entry.get("records_version", 1) == RECORDS_VERSION else 1.0


def robustness_table(present: dict[str, dict[int, Path]], out: Path, summary: dict) -> None:
    """Mean ± std over seeds of accuracy and ECE under Gaussian input noise (analysis/robustness.csv)."""
    table: dict[str, dict[float, list[tuple[float, float]]]] = {}
    for variant, seeds in present.items():
        for run in seeds.values():
            path = analysis_dir(run) / "robustness.csv"
            if not path.is_file():
                continue
            to_percent = percent_factor(analysis_dir(run), "robustness")
            with open(path) as f:
                for row in csv.DictReader(f):
                    table.setdefault(variant, {}).setdefault(float(row["sigma"]), []).append(
                        (to_percent * float(row["accuracy"]), float(row["ece"])))
    if not table:
        return
    sigmas = sorted({s for t in table.values() for s in t})
    lines = ["| variant | " + " | ".join(f"σ={s:g} acc % (ECE)" for s in sigmas) + " | seeds |",
             "|---|" + "---|" * (len(sigmas) + 1)]
    rows = {}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for variant, per_sigma in table.items():
        accs = [mean_std([a for a, _ in per_sigma.get(s, [])]) for s in sigmas]
        eces = [mean_std([e for _, e in per_sigma.get(s, [])]) for s in sigmas]
        n = min(len(v) for v in per_sigma.values())
        lines.append(f"| {variant} | " + " | ".join(f"{a:.2f} ± {sa:.2f} ({e:.3f})" for (a, sa), (e, _) in
                                                    zip(accs, eces, strict=True)) + f" | {n} |")
        rows[variant] = [{"sigma": s, "accuracy_mean": a, "accuracy_std": sa, "ece_mean": e, "ece_std": se}
                         for s, (a, sa), (e, se) in zip(sigmas, accs, eces, strict=True)]
        ax1.errorbar(sigmas, [a for a, _ in accs], yerr=[s for _, s in accs], marker="o", capsize=3, label=variant)
        ax2.errorbar(sigmas, [e for e, _ in eces], yerr=[s for _, s in eces], marker="o", capsize=3, label=variant)
    for ax, name in [(ax1, "test accuracy (%)"), (ax2, "expected calibration error")]:
        ax.set_xlabel("Gaussian input noise σ (pixels in [0, 1])")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    ax1.legend()
    fig.tight_layout()
    fig.savefig(out / "robustness.png", dpi=120)
    plt.close(fig)
    if "euler" in table:
        vs = {m: {f"{v} − euler, σ={s:g}": welch([x[i] for x in per_sigma.get(s, [])],
                                                 [x[i] for x in table["euler"].get(s, [])]).as_dict()
                  for v, per_sigma in table.items() if v != "euler" for s in sigmas}
              for i, m in ((0, "accuracy"), (1, "ece"))}
        lines += difference_lines("Accuracy differences from euler (points):", vs["accuracy"])
        lines += difference_lines("ECE differences from euler:", vs["ece"], digits=3)
        summary["robustness_vs_euler"] = vs
    (out / "robustness.md").write_text("\n".join(lines) + "\n")
    summary["robustness"] = rows


def convergence_plot(present: dict[str, dict[int, Path]], path: Path, depth: int) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for variant, seeds in present.items():
        curves = [epoch_curves(r) for r in seeds.values()]
        band(axes[0], [c["train_error"] for c in curves], variant)
        band(axes[1], [c["val_error"] for c in curves], variant)
    for ax, title in [(axes[0], f"depth {depth}: training error"), (axes[1], f"depth {depth}: validation error")]:
        ax.set_xlabel("epoch")
        ax.set_ylabel("error (%)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


STUDIES = {"degradation": degradation, "ho_comparison": ho_comparison}

if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in STUDIES:
        sys.exit(f"usage: python experiments/report.py {{{'|'.join(STUDIES)}}} RUNS OUT")
    STUDIES[sys.argv[1]](Path(sys.argv[2]), Path(sys.argv[3]))
