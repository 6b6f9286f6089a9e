"""``python -m horesnet.compare PATH... [out=DIR] [allow_unfair=true] [wandb=true]``: the variants' table (Markdown,
CSV, JSON: residual scale, parameters, mean ± std over seeds, confound flags), every pair's test-metric difference
(``stats.welch``; each variant against the reference first) and the figure (``plot``). What makes runs one variant,
and a comparison unfair or confounded, is ``variants``' (docs/design.md, "Fair comparisons")."""

from __future__ import annotations

import csv
import json
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from ..errors import ConfigError, check_writable
from ..files import json_safe
from .metrics import ACCURACY, Metric, metric_of, metric_of_rows
from .plot import plot
from .stats import ALPHA, LEVEL, MIN_SEEDS, format_mean_std, format_p, holm, mean_std, welch
from .summaries import load_runs
from .variants import (  # noqa: F401 -- variant_label is part of compare's API
    fairness_problems,
    labels,
    reference_key,
    scale_of,
    variant_flags,
    variant_key,
    variant_label,
)


def summarise(groups: dict[tuple, list[dict]]) -> list[dict]:
    rows, names, flags, ref = [], labels(groups), variant_flags(groups), reference_key(groups)
    m = metric_of([r for runs in groups.values() for r in runs])
    for key, runs in groups.items():
        r0, per_seed = runs[0], by_seed(runs)
        seeds = {split: [statistics.fmean(m.scale * r.get(split, {}).get(f"{split}/{m.key}", math.nan) for r in rs)
                         for rs in per_seed.values()] for split in ("test", "val")}
        test, val = mean_std(seeds["test"]), mean_std(seeds["val"])
        notes = [f"{len(rs)} runs share seed {s} (averaged: one value per distinct seed)"
                 for s, rs in per_seed.items() if len(rs) > 1]
        wall = mean_std([r.get("wall_time_s") for r in runs])
        ips = mean_std([r.get("images_per_sec") for r in runs])
        rows.append({
            "variant": names[key], "block": r0["config"]["block"], "depth": r0["config"]["depth"],
            "residual_scale": scale_of(r0), "flags": "; ".join([*flags[key], *notes]), "reference": key == ref,
            "units_per_stage": "/".join(map(str, r0["model"]["units_per_stage"])), "params": r0["model"]["params"],
            "macs": r0["model"].get("macs"), f"test_{m.name}_mean": test[0], f"test_{m.name}_std": test[1],
            f"val_{m.name}_mean": val[0], f"val_{m.name}_std": val[1], "wall_time_s": wall[0],
            "wall_time_s_std": wall[1], "images_per_sec": ips[0], "images_per_sec_std": ips[1],
            "seeds": len(per_seed), "n_runs": len(runs), "seed_list": list(per_seed),
            f"test_{m.name}_seeds": seeds["test"], "runs": [r["_dir"] for r in runs]})
    return sorted(rows, key=lambda r: (r["depth"], r["block"], r["variant"]))


def by_seed(runs: list[dict]) -> dict:
    """``{seed: [runs]}`` in seed order: the statistics count distinct seeds, not runs (two runs of one seed are
    one observation, not two)."""
    groups: dict = defaultdict(list)
    for r in runs:
        groups[r["config"].get("seed")].append(r)
    return dict(sorted(groups.items(), key=lambda kv: (kv[0] is None, kv[0] or 0)))


def differences(rows: list[dict]) -> list[dict]:
    """Test-metric difference a − b (points, or bits per character) of every pair of variants by ``stats.welch``:
    each variant against the reference first (b = the reference), then every other pair in table order, a = the later
    row. Each entry: a, b, reference (b is the reference), welch's fields and the Holm-adjusted p and verdict."""
    ref = next((r for r in rows if r.get("reference")), rows[0])  # variants.reference_key's row
    seeds = f"test_{metric_of_rows(rows).name}_seeds"
    others = [r for r in rows if r is not ref]
    pairs = [(r, ref) for r in others]
    pairs += [(others[j], others[i]) for i in range(len(others)) for j in range(i + 1, len(others))]
    out = [{"a": a["variant"], "b": b["variant"], "reference": b is ref,
            **welch(a[seeds], b[seeds]).as_dict()} for a, b in pairs]
    adjusted = holm([d["p"] for d in out])  # every tested pair is one of a family: Holm–Bonferroni
    for d, p in zip(out, adjusted, strict=True):
        d["p_holm"] = p
        d["verdict_holm"] = d["verdict"] if d["verdict"] == "not tested" else (
            "significant" if p < ALPHA else "not significant")
    return out


def stored(rows: list[dict], pairs: list[dict]) -> tuple[list[dict], list[dict]]:
    """``rows`` and ``pairs`` as the files (CSV, JSON, W&B) store them: accuracies and their differences as fractions
    (docs/analysis.md, "Units"; the rows and the Markdown show percent points); the folders' list dropped."""
    m = metric_of_rows(rows)
    fraction = lambda v: v if v is None or m.scale == 1 else round(v / m.scale, 12)
    rates = {f"{s}_{m.name}_{k}" for s in ("test", "val") for k in ("mean", "std")}
    seeds = f"test_{m.name}_seeds"
    file_rows = [{k: [fraction(x) for x in v] if k == seeds else fraction(v) if k in rates else v
                  for k, v in r.items() if k != "runs"} for r in rows]
    file_pairs = [{k: fraction(v) if k in ("difference", "ci_low", "ci_high") else v for k, v in d.items()}
                  for d in pairs]
    return file_rows, file_pairs


def differences_markdown(pairs: list[dict], m: Metric = ACCURACY) -> list[str]:
    if not pairs:
        return []
    tested = sum(d["verdict"] != "not tested" for d in pairs)
    what = ("Test accuracy differences a − b (points)" if m is ACCURACY
            else f"Test {m.title} differences a − b ({m.better})")
    lines = ["", f"{what}, {100 * LEVEL:.0f}% confidence interval from Welch's t, "
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
    m = metric_of_rows(rows)
    head = (f"| variant | block | depth | units/stage | residual scale | params | mult-adds | test {m.column} | "
            f"val {m.column} | wall s | train img/s | seeds |\n|---|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        macs = f"{r['macs'] / 1e6:.1f}M" if r["macs"] else "n/a"
        scale = f"{r['residual_scale']:.3f}" if r["residual_scale"] is not None else "n/a"
        lines.append(f"| {r['variant']} | {r['block']} | {r['depth']} | {r['units_per_stage']} | {scale} | "
                     f"{r['params']:,} | "
                     f"{macs} | {format_mean_std(r[f'test_{m.name}_mean'], r[f'test_{m.name}_std'])} | "
                     f"{format_mean_std(r[f'val_{m.name}_mean'], r[f'val_{m.name}_std'])} | "
                     f"{_spread(r['wall_time_s'], r['wall_time_s_std'], r['n_runs'])} | "
                     f"{_spread(r['images_per_sec'], r['images_per_sec_std'], r['n_runs'])} | {r['seeds']} |")
    lines += ["", ("Accuracies" if m is ACCURACY else f"Bits per character ({m.better})") + ": mean ± standard "
              "deviation over distinct seeds. Wall time and training img/s: mean ± standard deviation over runs; they "
              "depend on the machine and its load while each run trained (runs of one sweep share a machine with "
              "whatever else ran), so they are not a property of the scheme: compare speeds with benchmarks/.",
              "Fairness: " + ("passed (same units per stage, recipe, data and epochs)." if not problems
                              else "NOT FAIR -- " + "; ".join(problems))]
    lines += [f"- {r['variant']}: {r['flags']}" for r in rows if r["flags"]] or [
        "- no variant is confounded by residual scale, parameters or multiply-adds."]
    lines += differences_markdown(differences(rows), m)
    return "\n".join(lines) + "\n"


def _spread(mean: float, std: float, n: int) -> str:
    if math.isnan(mean):
        return "n/a"
    return f"{mean:.0f}" + (f" ± {std:.0f}" if n > 1 and not math.isnan(std) else " (1 run)")


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
    pairs = differences(rows)
    file_rows, file_pairs = stored(rows, pairs)
    for name, table in (("comparison.csv", file_rows), ("comparison_pairs.csv", file_pairs)):
        if table:  # there is always a row; pairs only with two variants
            with open(out_dir / name, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=list(table[0]))
                writer.writeheader()
                writer.writerows(table)
    (out_dir / "comparison.json").write_text(json.dumps(
        json_safe({"variants": file_rows, "differences": file_pairs, "fairness_problems": problems}), indent=2,
        allow_nan=False) + "\n")
    plot(rows, groups, out_dir / "comparison.png", [d for d in pairs if d["reference"]])
    if wandb:
        _log_wandb(file_rows, file_pairs, out_dir, wandb_project, runs)
    return rows, problems, out_dir


def _log_wandb(rows, pairs, out_dir: Path, project: str, runs: list[dict]) -> None:
    """The comparison table, its differences, a bar chart of test accuracy and the plot, in the W&B group the
    compared runs share (docs/wandb.md); the config names every training run it read."""
    import wandb as wb

    from ..training.loggers import log_run, table, wandb_mode
    from ..training.wandb_links import training_link

    links = [training_link(r["_dir"]) for r in runs]
    groups = {link.get("group") for link in links}
    m = metric_of_rows(rows)
    hidden = ("runs", "seed_list", f"test_{m.name}_seeds", "n_runs")
    tables = {"comparison": table(rows, [k for k in rows[0] if k not in hidden], json_safe)}
    if pairs:
        tables["comparison_differences"] = table(pairs, value=json_safe)
    chart = wb.plot.bar(tables["comparison"], "variant", f"test_{m.name}_mean",
                        title=f"test {m.name} (a fraction: docs/analysis.md, Units), mean over seeds")
    log_run([tables | {"comparison_chart": chart, "comparison_plot": wb.Image(str(out_dir / "comparison.png"))}],
            project=project, job_type="compare", dir=str(out_dir), mode=wandb_mode("auto"),
            group=groups.pop() if len(groups) == 1 else None, reinit="create_new",
            config={"runs": [r["_dir"] for r in runs], "train_run_ids": [link.get("id") for link in links]})
