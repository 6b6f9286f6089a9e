"""``python -m horesnet.compare PATH... [out=DIR] [allow_unfair=true] [wandb=true]``: compare trained variants.

Reads every ``summary.json`` under the given run folders (or multirun roots), groups runs by variant (every model
option and every recipe key; only the seed may differ), labels each variant by the model options that differ from
their defaults, and writes a Markdown + CSV table (residual scale, parameters, mean ± std over seeds) and a PNG.
Each variant is flagged where it is confounded against the reference (the Euler one): a residual scale more than 10%
away (with the matched Euler control and the command that trains it), or other parameters or multiply-adds
(docs/design.md, "Fair comparisons"). It refuses a comparison across units per stage, recipes, data or epochs
unless ``allow_unfair=true``, and says what differs.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from .errors import ConfigError, check_writable
from .models.config import MODEL_KEYS, complete, model_defaults

OPTIONS = {"out": None, "allow_unfair": "false", "wandb": "false", "wandb_project": "horesnet"}
RECIPE_KEYS = ("optim", "data.name", "data.val_size", "data.split_seed", "data.batch_size", "data.augment",
               "data.crop_padding", "data.flip", "data.limit_train", "data.limit_val", "data.limit_test",
               "trainer.max_epochs", "trainer.precision", "trainer.limit_train_batches", "channels_last")


def load_runs(paths: list[str]) -> list[dict]:
    runs = []
    for p in paths:
        path = Path(p)
        if not path.exists():
            raise ConfigError(f"{p!r} does not exist; give run folders or multirun roots that hold summary.json.")
        files = [path] if path.is_file() else sorted(path.rglob("summary.json"))
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


SUMMARY_FIELDS = {"status": str, "config": dict, "model": dict}
MODEL_FIELDS = {"params": int, "units_per_stage": list}


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


def _get(cfg: dict, dotted: str):
    for part in dotted.split("."):
        cfg = cfg.get(part) if isinstance(cfg, dict) else None
    return cfg


DATA_FOLLOWERS = ("num_classes", "in_channels")  # model keys that follow the data: told apart by the recipe
SCALE_TOLERANCE = 0.10


def model_options(run: dict) -> dict:
    """Every model option of a run, those its summary lacks (older runs) at their defaults."""
    return complete({k: v for k, v in run["config"].items() if k in MODEL_KEYS})


def recipe(run: dict) -> dict:
    return {key: _get(run["config"], key) for key in RECIPE_KEYS}


def variant_key(run: dict) -> tuple:
    """Runs are one variant only when every model option and every recipe key agree (the seed aside)."""
    return (json.dumps(model_options(run), sort_keys=True), json.dumps(recipe(run), sort_keys=True))


def variant_label(run: dict) -> str:
    """``block-depth`` plus every model option that differs from its default (``euler-56 step=0.25``)."""
    options, defaults = model_options(run), model_defaults()
    extras = [f"{k}={_show(v)}" for k, v in options.items()
              if k not in ("block", "depth", *DATA_FOLLOWERS) and v != defaults[k]]
    return " ".join([f"{options['block']}-{options['depth']}"] + extras)


def _show(v) -> str:
    return "[" + ",".join(map(str, v)) + "]" if isinstance(v, list) else str(v)


def labels(groups: dict[tuple, list[dict]]) -> dict[tuple, str]:
    """A distinct label per variant: the model label, plus the recipe keys that differ where two variants share
    a model label."""
    base = {key: variant_label(runs[0]) for key, runs in groups.items()}
    out = {}
    for key, label in base.items():
        twins = [k for k, lab in base.items() if lab == label]
        if len(twins) > 1:
            recipes = [recipe(groups[k][0]) for k in twins]
            mine = recipe(groups[key][0])
            differ = [k for k in RECIPE_KEYS if len({json.dumps(r[k], sort_keys=True) for r in recipes}) > 1]
            label += " [" + " ".join(f"{k}={json.dumps(mine[k])}" for k in differ) + "]"
        out[key] = label
    return out


def reference_key(groups: dict[tuple, list[dict]]) -> tuple:
    """The variant others are measured against: the Euler variant with step 1 and the fewest options changed from
    their defaults (a standard ResNet), else the first."""
    defaults = model_defaults()
    euler = [key for key, runs in groups.items() if model_options(runs[0])["block"] == "euler"
             and model_options(runs[0])["step"] == 1.0 and model_options(runs[0])["shortcut"] != "plain"]
    changed = lambda key: sum(v != defaults[k] for k, v in model_options(groups[key][0]).items())  # noqa: E731
    return min(euler, key=changed) if euler else next(iter(groups))


def scale_of(run: dict) -> float | None:
    scale = run["model"].get("residual_scale")
    return scale["mean"] if isinstance(scale, dict) else None


def matched_control(runs: list[dict]) -> tuple[str, str]:
    """(label, command) of the Euler network with the same residual scale as a variant's ``runs``: same options,
    block=euler and step = the variant's residual scale, trained over the same seeds."""
    run = runs[0]
    options = model_options(run)
    step = round(scale_of(run), 4)
    control = {**options, "block": "euler", "step": step, "inner": None, "tied": False, "entry": "euler"}
    defaults = model_defaults()
    keys = [f"{k}={_show(v) if v is not None else 'null'}" for k, v in control.items()
            if k not in ("block", "depth", "step", *DATA_FOLLOWERS) and v != defaults[k]]
    label = variant_label({"config": control})
    seeds = ",".join(str(x) for x in sorted({r["config"].get("seed", 0) for r in runs}))
    data = run["config"].get("data", {}).get("name")
    command = (f"python -m horesnet.fit -m block=euler depth={options['depth']} step={step:g} "
               + " ".join(keys + [f"data={data}"] if data else keys) + f" seed={seeds}")
    return label, " ".join(command.split())


def variant_flags(groups: dict[tuple, list[dict]]) -> dict[tuple, list[str]]:
    """Per variant, what confounds its comparison with the reference: a residual scale more than 10% away
    (scale-confounded, with the matched Euler control and the command that trains it), and different parameters
    or multiply-adds."""
    names = labels(groups)
    ref_key = reference_key(groups)
    ref = groups[ref_key][0]
    ref_scale, flags = scale_of(ref), {}
    present = {variant_label(runs[0]) for runs in groups.values()}
    for key, runs in groups.items():
        run, out = runs[0], []
        if key != ref_key:
            scale = scale_of(run)
            if scale is not None and ref_scale and abs(scale - ref_scale) > SCALE_TOLERANCE * ref_scale:
                label, command = matched_control(runs)
                where = "in this comparison" if label in present else f"train it with: {command}"
                out.append(f"scale-confounded: residual scale {scale:.3g} vs {ref_scale:.3g} ({names[ref_key]}); "
                           f"matched control {label} ({where})")
            for field, what in (("params", "parameters"), ("macs", "multiply-adds")):
                mine, theirs = run["model"].get(field), ref["model"].get(field)
                if mine and theirs and mine != theirs:
                    out.append(f"{what} {mine:,} vs {theirs:,} ({100 * (mine - theirs) / theirs:+.2f}%)")
        flags[key] = out
    return flags


def fairness_problems(groups: dict[tuple, list[dict]]) -> list[str]:
    """What makes the comparison meaningless (empty list: comparable): different units per stage, a
    continuous-depth variant, or different recipes, data or epochs."""
    problems = []
    names = labels(groups)
    units = {names[k]: tuple(runs[0]["model"]["units_per_stage"]) for k, runs in groups.items()}
    if len(set(units.values())) > 1:
        problems.append("units per stage differ: " + "; ".join(f"{k}: {list(v)}" for k, v in units.items()))
    for k, runs in groups.items():
        if not runs[0]["model"].get("equal_depth", True):
            problems.append(f"{names[k]} is not an equal-depth variant (block=ode)")
    all_runs = [r for runs in groups.values() for r in runs]
    for key in RECIPE_KEYS:
        values = {json.dumps(_get(r["config"], key), sort_keys=True) for r in all_runs}
        if len(values) > 1:
            problems.append(f"{key} differs between runs: {' vs '.join(sorted(values))}")
    return problems


def mean_std(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise(groups: dict[tuple, list[dict]]) -> list[dict]:
    rows, names, flags = [], labels(groups), variant_flags(groups)
    for key, runs in groups.items():
        r0 = runs[0]
        test = mean_std([100 * r.get("test", {}).get("test/acc1", float("nan")) for r in runs])
        val = mean_std([100 * r.get("val", {}).get("val/acc1", float("nan")) for r in runs])
        wall = mean_std([r.get("wall_time_s", float("nan")) for r in runs])
        ips = mean_std([r.get("images_per_sec", float("nan")) for r in runs])
        rows.append({
            "variant": names[key], "block": r0["config"]["block"], "depth": r0["config"]["depth"],
            "residual_scale": scale_of(r0), "flags": "; ".join(flags[key]),
            "units_per_stage": "/".join(map(str, r0["model"]["units_per_stage"])), "params": r0["model"]["params"],
            "macs": r0["model"].get("macs"), "test_acc_mean": test[0], "test_acc_std": test[1],
            "val_acc_mean": val[0], "val_acc_std": val[1], "wall_time_s": wall[0], "images_per_sec": ips[0],
            "seeds": len(runs), "seed_list": sorted(r["config"].get("seed") for r in runs),
            "runs": [r["_dir"] for r in runs],
        })
    return sorted(rows, key=lambda r: (r["depth"], r["block"], r["variant"]))


def markdown(rows: list[dict], problems: list[str]) -> str:
    head = ("| variant | block | depth | units/stage | residual scale | params | mult-adds | test acc % | val acc % "
            "| wall s | img/s | seeds |\n|---|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        macs = f"{r['macs'] / 1e6:.1f}M" if r["macs"] else "n/a"
        scale = f"{r['residual_scale']:.3f}" if r["residual_scale"] is not None else "n/a"
        lines.append(f"| {r['variant']} | {r['block']} | {r['depth']} | {r['units_per_stage']} | {scale} | "
                     f"{r['params']:,} | "
                     f"{macs} | {r['test_acc_mean']:.2f} ± {r['test_acc_std']:.2f} | {r['val_acc_mean']:.2f} ± "
                     f"{r['val_acc_std']:.2f} | {r['wall_time_s']:.0f} | {r['images_per_sec']:.0f} | {r['seeds']} |")
    lines.append("")
    lines.append("Fairness: " + ("passed (same units per stage, recipe, data and epochs)." if not problems
                                 else "NOT FAIR -- " + "; ".join(problems)))
    flagged = [r for r in rows if r["flags"]]
    lines += [f"- {r['variant']}: {r['flags']}" for r in flagged] or ["- no variant is confounded by residual "
                                                                      "scale, parameters or multiply-adds."]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], groups: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = [r["variant"] for r in rows]
    ax1.bar(range(len(rows)), [r["test_acc_mean"] for r in rows], yerr=[r["test_acc_std"] for r in rows], capsize=4)
    ax1.set_xticks(range(len(rows)), names, rotation=30, ha="right")
    ax1.set_ylabel("final test accuracy (%)")
    lo = min(r["test_acc_mean"] - r["test_acc_std"] for r in rows)
    ax1.set_ylim(max(0.0, lo - 2), None)
    ax1.set_title("test accuracy, mean ± std over seeds")
    for row in rows:
        for run_dir in row["runs"]:
            curve = _val_curve(Path(run_dir) / "metrics.csv")
            if curve:
                label = row["variant"] if run_dir == row["runs"][0] else None
                ax2.plot(*zip(*curve, strict=True), alpha=0.7, label=label)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("validation accuracy (%)")
    ax2.set_title("validation accuracy per epoch")
    if ax2.get_legend_handles_labels()[0]:
        ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


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
    plot(rows, groups, out_dir / "comparison.png")
    if wandb:
        _log_wandb(rows, out_dir, wandb_project)
    return rows, problems, out_dir


def _log_wandb(rows, out_dir: Path, project: str) -> None:
    import wandb as wb

    from .training.loggers import init_run, wandb_mode

    run = init_run(project=project, job_type="compare", dir=str(out_dir), mode=wandb_mode("auto"),
                   reinit="create_new")
    cols = [k for k in rows[0] if k not in ("runs", "seed_list")]
    run.log({"comparison": wb.Table(columns=cols, data=[[r[c] for c in cols] for r in rows]),
             "comparison_plot": wb.Image(str(out_dir / "comparison.png"))})
    run.finish()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
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
