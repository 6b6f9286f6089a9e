"""``python -m horesnet.compare PATH... [out=DIR] [allow_unfair=true] [wandb=true]``: compare trained variants.

Reads every ``summary.json`` under the given run folders (or multirun roots), groups runs by variant (every model
option and every recipe key; only the seed may differ), labels each variant by the model options that differ from
their defaults, and writes a Markdown + CSV table (residual scale, parameters, mean ± std over seeds) and a PNG.
Each variant is flagged where it is confounded against the reference (the plain Euler variant): a residual scale
more than 10% away (with the matched Euler control and the command that trains it), or other parameters or
multiply-adds (docs/design.md, "Fair comparisons"). For every pair of variants it gives the difference in test
accuracy with its 95% confidence interval and Welch p-value (``horesnet.stats.welch``, docs/design.md
"Statistics"): first each variant against the reference, then the remaining pairs; Markdown,
``comparison_pairs.csv`` and ``comparison.json`` list them all. It refuses a comparison across units per stage,
recipes, data or epochs unless ``allow_unfair=true``, and says what differs.
"""

from __future__ import annotations

import csv
import json
import math
import stat
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from .errors import ConfigError, check_writable
from .stats import ALPHA, LEVEL, MIN_SEEDS, format_mean_std, format_p, holm, mean_std, welch
from .variants import (  # noqa: F401 -- variant_key, variant_label, RECIPE_KEYS are part of compare's API
    RECIPE_KEYS,
    fairness_problems,
    labels,
    reference_key,
    scale_of,
    variant_flags,
    variant_key,
    variant_label,
)

OPTIONS = {"out": None, "allow_unfair": "false", "wandb": "false", "wandb_project": "horesnet"}


def load_runs(paths: list[str]) -> list[dict]:
    runs = []
    for p in paths:
        path = Path(p)
        if not path.exists():
            raise ConfigError(f"{p!r} does not exist; give run folders or multirun roots that hold summary.json.")
        if path.exists() and not path.is_dir() and not path.is_file():
            raise ConfigError(f"{p!r} is neither a folder nor a regular file (a FIFO or device?); give run folders "
                              "or multirun roots that hold summary.json.")
        files = [path] if path.is_file() else sorted(f for f in path.rglob("summary.json") if _regular(f))
        for f in files:
            try:
                s = json.loads(f.read_text())
            except (json.JSONDecodeError, OSError, UnicodeDecodeError) as err:
                raise ConfigError(f"{f} is not a readable summary.json ({err}).") from None
            check_summary(s, f)
            s["_dir"] = str(f.parent)
            runs.append(s)
    if not runs:
        raise ConfigError(f"no finished runs (summary.json) under {', '.join(paths)}.")
    return runs


def _regular(f: Path) -> bool:
    """A regular file (never open a FIFO or a device named summary.json: reading it could block forever)."""
    try:
        return stat.S_ISREG(f.stat().st_mode)
    except OSError:
        return False


SUMMARY_FIELDS = {"status": str, "config": dict, "model": dict}
MODEL_FIELDS = {"params": int, "units_per_stage": list}
# the numbers compare reads: (section, key, lowest, highest, required when finished); None: no bound
NUMBERS = ((("test", "test/acc1"), 0.0, 1.0, True), (("val", "val/acc1"), 0.0, 1.0, True),
           (("wall_time_s",), 0.0, None, False), (("images_per_sec",), 0.0, None, False),
           (("model", "macs"), 0, None, False), (("model", "residual_scale", "mean"), 0.0, None, False))


def _number_problem(value, low, high) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"is {json.dumps(value)[:40]}, not a number"
    if not math.isfinite(value):
        return f"is {value}, not a finite number"
    if (low is not None and value < low) or (high is not None and value > high):
        return f"is {value}, outside [{low}, {high if high is not None else '∞'}]"
    return None


def check_summary(s, path) -> None:
    """Refuse a summary.json that horesnet.fit did not write (wrong type, missing fields)."""
    if not isinstance(s, dict):
        raise ConfigError(f"{path} is not a horesnet run summary: it holds a JSON {type(s).__name__}, not an object "
                          f"with the fields {', '.join(SUMMARY_FIELDS)}.")
    for fields, tree, where in ((SUMMARY_FIELDS, s, ""), (MODEL_FIELDS, s.get("model"), "model.")):
        for key, kind in fields.items():
            if not isinstance(tree, dict) or not isinstance(tree.get(key), kind):
                raise ConfigError(f"{path} is not a horesnet run summary: field {where}{key!r} is missing or not "
                                  f"a JSON {kind.__name__} (needed: {', '.join(where + k for k in fields)}).")
    for key in ("block", "depth"):
        if key not in s["config"]:
            raise ConfigError(f"{path} is not a horesnet run summary: config has no {key!r}.")
    m = s["model"]
    if m["params"] < 1 or not m["units_per_stage"] or not all(
            isinstance(u, int) and not isinstance(u, bool) and u >= 0 for u in m["units_per_stage"]):
        raise ConfigError(f"{path}: model.params ({m['params']}) must be >= 1 and model.units_per_stage "
                          f"({m['units_per_stage']!r}) a list of unit counts.")
    seed = s["config"].get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ConfigError(f"{path}: config.seed is {seed!r}, not an integer.")
    for keys, low, high, required in NUMBERS:
        tree, value = s, None
        for k in keys:
            value = tree.get(k) if isinstance(tree, dict) else None
            tree = value
        if value is None and not (required and s["status"] == "finished"):
            continue
        problem = "is missing" if value is None else _number_problem(value, low, high)
        if problem:
            raise ConfigError(f"{path}: field {'.'.join(keys)!r} {problem} (horesnet.fit writes a finite number "
                              f"in [{low}, {high if high is not None else '∞'}]); the file is damaged or was not "
                              "written by horesnet.fit.")


def summarise(groups: dict[tuple, list[dict]]) -> list[dict]:
    rows, names, flags, ref = [], labels(groups), variant_flags(groups), reference_key(groups)
    for key, runs in groups.items():
        r0 = runs[0]
        per_seed = by_seed(runs)
        test_seeds = [statistics.fmean(100 * r.get("test", {}).get("test/acc1", float("nan")) for r in rs)
                      for rs in per_seed.values()]
        test = mean_std(test_seeds)
        val = mean_std([statistics.fmean(100 * r.get("val", {}).get("val/acc1", float("nan")) for r in rs)
                        for rs in per_seed.values()])
        repeated = {s: len(rs) for s, rs in per_seed.items() if len(rs) > 1}
        notes = [f"{n} runs share seed {s} (averaged: one value per distinct seed)" for s, n in repeated.items()]
        wall = mean_std([r.get("wall_time_s") for r in runs])
        ips = mean_std([r.get("images_per_sec") for r in runs])
        rows.append({
            "variant": names[key], "block": r0["config"]["block"], "depth": r0["config"]["depth"],
            "residual_scale": scale_of(r0), "flags": "; ".join([*flags[key], *notes]), "reference": key == ref,
            "units_per_stage": "/".join(map(str, r0["model"]["units_per_stage"])), "params": r0["model"]["params"],
            "macs": r0["model"].get("macs"), "test_acc_mean": test[0], "test_acc_std": test[1],
            "val_acc_mean": val[0], "val_acc_std": val[1], "wall_time_s": wall[0], "wall_time_s_std": wall[1],
            "images_per_sec": ips[0], "images_per_sec_std": ips[1],
            "seeds": len(per_seed), "n_runs": len(runs), "seed_list": list(per_seed),
            "test_acc_seeds": test_seeds,
            "runs": [r["_dir"] for r in runs],
        })
    return sorted(rows, key=lambda r: (r["depth"], r["block"], r["variant"]))


def by_seed(runs: list[dict]) -> dict:
    """``{seed: [runs]}`` in seed order: the statistics count distinct seeds, not runs (two runs of one seed are
    one observation, not two)."""
    groups: dict = defaultdict(list)
    for r in runs:
        groups[r["config"].get("seed")].append(r)
    return dict(sorted(groups.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)))


def reference_row(rows: list[dict]) -> dict:
    """The variant every other one is compared with first (``horesnet.variants.reference_key``: the plain Euler
    variant when present)."""
    return next((r for r in rows if r.get("reference")), rows[0])


def differences(rows: list[dict]) -> list[dict]:
    """Test-accuracy difference a − b (points) for every pair of variants, by ``horesnet.stats.welch``.

    Each variant against the reference comes first (a = the variant, b = the reference); then every other pair in
    table order, a = the later row. Each entry: a, b, reference (b is the reference), and welch's fields.
    """
    ref = reference_row(rows)
    others = [r for r in rows if r is not ref]
    pairs = [(r, ref) for r in others]
    pairs += [(others[j], others[i]) for i in range(len(others)) for j in range(i + 1, len(others))]
    out = [{"a": a["variant"], "b": b["variant"], "reference": b is ref,
            **welch(a["test_acc_seeds"], b["test_acc_seeds"]).as_dict()} for a, b in pairs]
    adjusted = holm([d["p"] for d in out])  # every tested pair is one of a family: Holm–Bonferroni
    for d, p in zip(out, adjusted, strict=True):
        d["p_holm"] = p
        d["verdict_holm"] = d["verdict"] if d["verdict"] == "not tested" else (
            "significant" if p < ALPHA else "not significant")
    return out


def differences_markdown(pairs: list[dict]) -> list[str]:
    if not pairs:
        return []
    tested = sum(d["verdict"] != "not tested" for d in pairs)
    lines = ["", f"Test accuracy differences a − b (points), {100 * LEVEL:.0f}% confidence interval from Welch's t, "
             f"Welch's two-sided p; significant: p < {ALPHA}; not tested: fewer than {MIN_SEEDS} seeds in an arm."]
    if tested > 1:
        lines.append(f"{tested} pairs are tested here: 'p (Holm)' is the Holm–Bonferroni adjusted p over them (it "
                     f"bounds the chance of any false 'significant' at {ALPHA}); the verdict follows the raw p, "
                     "'Holm' the adjusted one.")
    lines += ["", "| a | b | a − b | 95% CI | p | p (Holm) | seeds a/b | verdict | Holm |",
              "|---|---|---|---|---|---|---|---|---|"]
    for d in pairs:
        ok = d["verdict"] != "not tested"
        ci = f"[{d['ci_low']:+.2f}, {d['ci_high']:+.2f}]" if ok else "n/a"
        p = format_p(d["p"]).removeprefix("p=") if ok else "n/a"
        ph = format_p(d["p_holm"]).removeprefix("p=") if ok and tested > 1 else "n/a"
        holm_verdict = d["verdict_holm"] if ok and tested > 1 else "n/a"
        lines.append(f"| {d['a']} | {d['b']} | {d['difference']:+.2f} | {ci} | {p} | {ph} | {d['n_a']}/{d['n_b']} | "
                     f"{d['verdict']} | {holm_verdict} |")
    return lines


def markdown(rows: list[dict], problems: list[str]) -> str:
    head = ("| variant | block | depth | units/stage | residual scale | params | mult-adds | test acc % | val acc % "
            "| wall s | train img/s | seeds |\n|---|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        macs = f"{r['macs'] / 1e6:.1f}M" if r["macs"] else "n/a"
        scale = f"{r['residual_scale']:.3f}" if r["residual_scale"] is not None else "n/a"
        lines.append(f"| {r['variant']} | {r['block']} | {r['depth']} | {r['units_per_stage']} | {scale} | "
                     f"{r['params']:,} | "
                     f"{macs} | {format_mean_std(r['test_acc_mean'], r['test_acc_std'])} | "
                     f"{format_mean_std(r['val_acc_mean'], r['val_acc_std'])} | "
                     f"{_spread(r['wall_time_s'], r['wall_time_s_std'], r['n_runs'])} | "
                     f"{_spread(r['images_per_sec'], r['images_per_sec_std'], r['n_runs'])} | {r['seeds']} |")
    lines.append("")
    lines.append("Accuracies: mean ± standard deviation over distinct seeds. Wall time and training img/s: mean ± "
                 "standard deviation over runs; they depend on the machine and its load while each run trained "
                 "(runs of one sweep share a machine with whatever else ran), so they are not a property of the "
                 "scheme: compare speeds with benchmarks/.")
    lines.append("Fairness: " + ("passed (same units per stage, recipe, data and epochs)." if not problems
                                 else "NOT FAIR -- " + "; ".join(problems)))
    flagged = [r for r in rows if r["flags"]]
    lines += [f"- {r['variant']}: {r['flags']}" for r in flagged] or ["- no variant is confounded by residual "
                                                                      "scale, parameters or multiply-adds."]
    lines += differences_markdown(differences(rows))
    return "\n".join(lines) + "\n"


def _spread(mean: float, std: float, n: int) -> str:
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.0f}" + (f" ± {std:.0f}" if n > 1 and not math.isnan(std) else " (1 run)")


def plot(rows: list[dict], groups: dict, path: Path) -> None:
    """Left: every seed's final test accuracy (dots) with the variant's mean and 95% CI (t over seeds), each variant
    annotated with its difference from the reference (CI, p); right: validation accuracy per epoch, one line per run.
    The titles say the dataset, the split and the epochs."""
    from .analysis import style as S

    fig, (ax1, ax2) = S.figure(2, width=12, height=4.8)
    names = [r["variant"] for r in rows]
    diffs = {d["a"]: d for d in differences(rows) if d["reference"]}
    for i, r in enumerate(rows):
        seeds = r["test_acc_seeds"]
        jitter = [(k - (len(seeds) - 1) / 2) * 0.06 for k in range(len(seeds))]
        ax1.scatter([i + j for j in jitter], seeds, s=18, color=f"C{i % 10}", alpha=0.8, zorder=3,
                    label="one seed" if i == 0 else None)
        half = _ci_half(seeds)
        ax1.errorbar([i + 0.3], [r["test_acc_mean"]], yerr=[[half], [half]] if half == half else None,
                     fmt="D", color="k", ms=5, capsize=4, zorder=4, label="mean, 95% CI" if i == 0 else None)
        d = diffs.get(r["variant"])
        note = "reference (Δ = variant − this)" if r.get("reference") else (
            f"Δ {d['difference']:+.2f}" + (f" [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}]\n{format_p(d['p'])}"
                                          if d["verdict"] != "not tested" else "\nnot tested") if d else "")
        ax1.annotate(note, (i, 0), xycoords=("data", "axes fraction"), xytext=(0, 4), textcoords="offset points",
                     ha="center", va="bottom", fontsize=7)
    ax1.set_xticks(range(len(rows)), names, rotation=30, ha="right")
    ax1.set_xlim(-0.6, len(rows) - 0.4)
    low, high = ax1.get_ylim()
    ax1.set_ylim(low - 0.18 * (high - low), high)  # room for the notes under the points
    data = _data_note(groups)
    S.label(ax1, "variant", "final test accuracy (%)", f"test accuracy per seed, {data}")
    ax1.legend(fontsize=8, loc="upper left")
    for i, row in enumerate(rows):
        for run_dir in row["runs"]:  # one colour per variant, one line per run
            curve = _val_curve(Path(run_dir) / "metrics.csv")
            if curve:
                label = row["variant"] if run_dir == row["runs"][0] else None
                ax2.plot(*zip(*curve, strict=True), alpha=0.7, marker=".", color=f"C{i % 10}", label=label)
    S.label(ax2, "epoch", "validation accuracy (%)", "validation accuracy per epoch, one line per run")
    S.integer_ticks(ax2)
    if ax2.get_legend_handles_labels()[0]:
        ax2.legend(fontsize=8)
    S.save(fig, path)


def _ci_half(values: list[float]) -> float:
    """Half-width of the 95% t interval of the mean of ``values`` (NaN below two values)."""
    from scipy.stats import t as student_t

    values = [v for v in values if v == v]
    if len(values) < 2:
        return math.nan
    return float(student_t.ppf((1 + LEVEL) / 2, len(values) - 1)) * statistics.stdev(values) / math.sqrt(len(values))


def _data_note(groups: dict) -> str:
    """``fashion_mnist test split (first 2,000 images)`` from the runs' recorded data config."""
    data = next(iter(groups.values()))[0]["config"].get("data") or {}
    limit = data.get("limit_test")
    return f"{data.get('name', '?')} test split" + (f" (first {limit:,} images)" if isinstance(limit, int) else "")


def _val_curve(path: Path) -> list[tuple[int, float]]:
    if not path.is_file():
        return []
    with open(path) as f:
        return [(int(r["epoch"]) + 1, 100 * float(r["val/acc1"])) for r in csv.DictReader(f) if r.get("val/acc1")]


def compare(paths: list[str], out: str | None = None, allow_unfair: bool = False, wandb: bool = False,
            wandb_project: str = "horesnet") -> tuple[list[dict], list[str], Path]:
    runs = load_runs(paths)
    unfinished = [r for r in runs if r["status"] != "finished"]
    runs = [r for r in runs if r["status"] == "finished"]
    for r in unfinished:
        print(f"horesnet.compare: left out {r['_dir']}: status {r['status']!r}", file=sys.stderr)
    if not runs:
        raise ConfigError(f"no finished runs under {', '.join(paths)} ({len(unfinished)} run(s) did not finish: "
                          f"{', '.join(sorted({r['status'] for r in unfinished}))}).")
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in runs:
        groups[variant_key(r)].append(r)
    problems = fairness_problems(groups)
    if problems and not allow_unfair:
        raise ConfigError("unfair comparison: " + "; ".join(problems) + ". Compare runs of the same depth and "
                          "recipe, or pass allow_unfair=true to write the table anyway (it will say NOT FAIR).")
    rows = summarise(groups)
    out_dir = Path(out) if out else Path(paths[0] if Path(paths[0]).is_dir() else Path(paths[0]).parent) / "comparison"
    check_writable("out", out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "comparison.md").write_text(markdown(rows, problems))
    with open(out_dir / "comparison.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[k for k in rows[0] if k != "runs"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    pairs = differences(rows)
    if pairs:
        with open(out_dir / "comparison_pairs.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(pairs[0]))
            writer.writeheader()
            writer.writerows(pairs)
    (out_dir / "comparison.json").write_text(json.dumps(
        json_safe({"variants": [{k: v for k, v in r.items() if k != "runs"} for r in rows], "differences": pairs,
                 "fairness_problems": problems}), indent=2, allow_nan=False) + "\n")
    plot(rows, groups, out_dir / "comparison.png")
    if wandb:
        _log_wandb(rows, pairs, out_dir, wandb_project, runs)
    return rows, problems, out_dir


def json_safe(obj):
    """NaN and ±inf (a spread or test that does not exist) become null: strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [json_safe(v) for v in obj]
    return obj


def _log_wandb(rows, pairs, out_dir: Path, project: str, runs: list[dict]) -> None:
    """The comparison table, its differences, a bar chart of test accuracy and the plot, in the W&B group the
    compared runs share (docs/wandb.md); the config names every training run it read."""
    import wandb as wb

    from .training.loggers import init_run, wandb_mode
    from .training.wandb_links import training_link, write_offline_files

    links = [training_link(r["_dir"]) for r in runs]
    groups = {link.get("group") for link in links}
    run = init_run(project=project, job_type="compare", dir=str(out_dir), mode=wandb_mode("auto"),
                   group=groups.pop() if len(groups) == 1 else None, reinit="create_new",
                   config={"runs": [r["_dir"] for r in runs], "train_run_ids": [link.get("id") for link in links]})
    cols = [k for k in rows[0] if k not in ("runs", "seed_list", "test_acc_seeds", "n_runs")]
    table = wb.Table(columns=cols, data=[[json_safe(r[c]) for c in cols] for r in rows])
    tables = {"comparison": table}
    if pairs:
        tables["comparison_differences"] = wb.Table(columns=list(pairs[0]),
                                                    data=[list(json_safe(d).values()) for d in pairs])
    chart = wb.plot.bar(table, "variant", "test_acc_mean", title="test accuracy (%), mean over seeds")
    run.log(tables | {"comparison_chart": chart, "comparison_plot": wb.Image(str(out_dir / "comparison.png"))})
    write_offline_files(run)
    run.finish()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from .help import print_help, wants_help

    if wants_help(argv):
        return print_help("compare", argv)
    opts, paths = dict(OPTIONS), []
    for a in argv:
        key, sep, value = a.partition("=")
        if sep and key in OPTIONS:
            opts[key] = value
        elif sep and not Path(a).exists():
            print(f"horesnet.compare: error: unknown option {key!r}; valid: {', '.join(OPTIONS)}.", file=sys.stderr)
            return 2
        else:
            paths.append(a)
    try:
        if not paths:
            raise ConfigError("give at least one run folder or multirun root, "
                              "e.g. python -m horesnet.compare multirun/X")
        flags = {}
        for k in ("allow_unfair", "wandb"):
            if opts[k].lower() not in ("true", "false"):
                raise ConfigError(f"{k} must be true or false, got {opts[k]!r}.")
            flags[k] = opts[k].lower() == "true"
        rows, problems, out_dir = compare(paths, opts["out"], flags["allow_unfair"], flags["wandb"],
                                          opts["wandb_project"])
    except ConfigError as err:
        print(f"horesnet.compare: error: {err}", file=sys.stderr)
        return 2
    print(markdown(rows, problems))
    print(f"wrote {out_dir}/comparison.md, comparison.csv, comparison.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
