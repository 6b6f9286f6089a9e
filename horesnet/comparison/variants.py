"""What a variant is and what confounds its comparison (docs/design.md, "Fair comparisons").

Runs are one variant when every model option (``horesnet.models.ModelConfig``) and every recipe key agree; only the
seed may differ. A variant is labelled by the model options that differ from their defaults, measured against the
reference (the plain Euler variant), and flagged where the comparison is confounded: a residual scale more than 10%
away (with the matched Euler control and the command that trains it) or other parameters or multiply-adds.
"""

from __future__ import annotations

import functools
import json

from omegaconf import OmegaConf

from ..models.config import MODEL_KEYS, arch_defaults, complete
from ..models.scale import control_step  # noqa: F401 -- re-exported: cli.controls and tests import it from here
from ..runs import overrides_path
from .summaries import dotted

RECIPE_KEYS = ("optim", "data.name", "data.val_size", "data.split_seed", "data.batch_size", "data.augment",
               "data.crop_padding", "data.flip", "data.limit_train", "data.limit_val", "data.limit_test",
               "trainer.max_epochs", "trainer.precision", "trainer.limit_train_batches", "channels_last",
               "weights")


DATA_FOLLOWERS = ("num_classes", "in_channels")  # model keys that follow the data: told apart by the recipe
SCALE_TOLERANCE = 0.10


def model_options(run: dict) -> dict:
    """Every model option of a run, those its summary lacks (older runs) at their defaults."""
    return complete({k: v for k, v in run["config"].items() if k in MODEL_KEYS})


def recipe(run: dict) -> dict:
    return {key: dotted(run["config"], key) for key in RECIPE_KEYS}


def variant_key(run: dict) -> tuple:
    """Runs are one variant only when every model option and every recipe key agree (the seed aside)."""
    return (json.dumps(model_options(run), sort_keys=True), json.dumps(recipe(run), sort_keys=True))


def variant_label(run: dict) -> str:
    """``block-depth`` plus every model option that differs from its default (``euler-56 step=0.25``)."""
    options = model_options(run)
    defaults = arch_defaults(options["arch"])
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
    """The variant others are measured against: the Euler variant (with a skip) with the fewest options changed from
    their defaults -- a standard ResNet when there is one, else e.g. a matched control --, else the first."""
    options = {key: model_options(runs[0]) for key, runs in groups.items()}
    euler = [key for key, o in options.items() if o["block"] == "euler" and o["shortcut"] != "plain"]
    changed = lambda key: sum(v != arch_defaults(options[key]["arch"])[k]  # noqa: E731
                              for k, v in options[key].items())
    return min(euler, key=changed) if euler else next(iter(groups))


def scale_of(run: dict) -> float | None:
    """The run's residual scale from its summary, or -- for a summary written before it was recorded -- computed
    from its model options (None when they do not build here, e.g. a unit from a plugin that is not loaded)."""
    scale = run["model"].get("residual_scale")
    if isinstance(scale, dict):
        return scale["mean"]
    return _scale_from_options(json.dumps(model_options(run), sort_keys=True))


@functools.lru_cache(maxsize=256)
def _scale_from_options(options: str) -> float | None:
    from ..errors import ConfigError
    from ..models import build_model
    from ..models.scale import residual_scale

    try:
        scale = residual_scale(build_model(json.loads(options)))
    except ConfigError:
        return None
    return scale["mean"] if scale else None


# options a matched control sets itself (block=euler, step=scale, the rest at their defaults) or per run; the
# options only multistep blocks take (their coefficients, reversible training) are back at their defaults too
MULTISTEP_KEYS = ("coefficient", "learn_coefficients", "coefficient_per_channel", "reversible", "reversible_unsafe")
CONTROL_RESET = ("block", "step", "inner", "tied", "entry", "seed", "resume", "hydra.run.dir", "scale_controls",
                 *MULTISTEP_KEYS)


def control_overrides(overrides: list[str], step: float, seeds: str) -> list[str]:
    """The command line of the matched Euler control of a variant run with ``overrides``."""
    kept = [o for o in overrides if o.partition("=")[0].lstrip("+~") not in CONTROL_RESET]
    return ["block=euler", f"step={step:g}", *kept, f"seed={seeds}"]


def matched_control(runs: list[dict]) -> tuple[str, str]:
    """(label, command) of the Euler network with the same residual scale as a variant's ``runs``: same options,
    block=euler and step = the variant's residual scale, trained over the same seeds with the same command line
    (the run's recorded ``.hydra/overrides.yaml``; without it, its model options and data)."""
    run = runs[0]
    options = model_options(run)
    step = control_step(scale_of(run))
    defaults = arch_defaults(options["arch"])
    control = {**options, "block": "euler", "step": step, "inner": None, "tied": False, "entry": "euler",
               **{k: defaults[k] for k in MULTISTEP_KEYS}}
    seeds = ",".join(str(x) for x in sorted({r["config"].get("seed", 0) for r in runs}))
    given = _recorded_overrides(run)
    if given is None:
        given = [f"{k}={_show(v) if v is not None else 'null'}" for k, v in control.items()
                 if k not in (*CONTROL_RESET, *DATA_FOLLOWERS) and v != defaults[k]]
        data = (run["config"].get("data") or {}).get("name")
        given += [f"data={data}"] if data else []
    command = " ".join(["python -m horesnet.fit -m", *control_overrides(given, step, seeds)])
    return variant_label({"config": control}), command


def _recorded_overrides(run: dict) -> list[str] | None:
    """The command-line overrides Hydra recorded for the run (``<run>/.hydra/overrides.yaml``), if readable."""
    path = overrides_path(run.get("_dir", ""))
    try:
        items = OmegaConf.to_container(OmegaConf.load(path))
    except Exception:  # noqa: BLE001 -- absent or unreadable: fall back to the summary
        return None
    return [str(i) for i in items] if isinstance(items, list) else None


def variant_flags(groups: dict[tuple, list[dict]]) -> dict[tuple, list[str]]:
    """Per variant, what confounds its comparison with the reference (the module docstring); none for the reference
    itself."""
    names = labels(groups)
    ref_key = reference_key(groups)
    ref = groups[ref_key][0]
    ref_scale, flags = scale_of(ref), {}
    present = {variant_label(runs[0]) for runs in groups.values()}
    scales = {key: scale_of(runs[0]) for key, runs in groups.items()}
    for key, runs in groups.items():
        run, scale, out = runs[0], scales[key], []
        if scale is not None and ref_scale and abs(scale - ref_scale) > SCALE_TOLERANCE * ref_scale:
            versus = f"{scale:.3g} vs {ref_scale:.3g} ({names[ref_key]})"
            label, command = matched_control(runs)
            if model_options(run).get("layout") == "macaron":  # docs/transformers.md
                out.append(f"residual scale {versus} by construction: Macaron's steps 1/2, 1, 1/2 are its scheme; no "
                           "Euler network of the same units matches it")
            elif label == variant_label(run):  # it is itself the Euler network at a matched scale
                step = float(model_options(run).get("step", 1.0))
                served = [names[k] for k, sc in scales.items() if k != key and sc is not None
                          and model_options(groups[k][0])["block"] != "euler" and control_step(sc) == step]
                out.append(f"Euler at residual scale {versus}: its difference from the reference is the scale effect "
                           "itself" + (f"; the matched-scale control of {', '.join(served)}" if served else ""))
            else:
                where = "in this comparison" if label in present else f"train it with: {command}"
                out.append(f"scale-confounded: residual scale {versus}; matched control {label} ({where})")
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
        values = {json.dumps(dotted(r["config"], key), sort_keys=True) for r in all_runs}
        if len(values) > 1:
            problems.append(f"{key} differs between runs: {' vs '.join(sorted(values))}")
    return problems
