"""The built-in studies of ``python -m horesnet.analyze`` (docs/design.md, "Analysis"), registered through the same
``register_study`` a plugin uses (docs/extending_studies.md): each wires a public analysis function, its plots and
its command-line options."""

from __future__ import annotations

from ..spec import BOOL, COUNT, POSITIVE_INT, Spec
from . import plots as P
from .common import EvalData
from .effective import effective_paths
from .lesion import lesion_random, lesion_single, reorder
from .paths import path_lengths
from .refinement import refinement
from .registry import Option, register_study
from .responses import responses
from .robustness import robustness

SEED = Option(0, COUNT, "random seed of the sampled deletions, orders, paths and noise")
TRIALS = Option(5, POSITIVE_INT, "random draws per setting")


def _lesion(model, data, o):
    grains = ("unit", "block") if o["granularity"] == "both" else (o["granularity"],)
    return {("lesion" if g == "unit" else "lesion_block"): lesion_single(model, data, g) for g in grains}


def _first(data: EvalData, n: int) -> list:
    """The first ``n`` images of ``data`` as batches."""
    out, left = [], n
    for x, y in data.batches:
        if left <= 0:
            break
        out.append((x[:left], y[:left]))
        left -= len(y)
    return out


def _effective(model, data, o):
    sub = EvalData(_first(data, o["effective_images"]), data.pixel_std, data.name)
    return {"effective": effective_paths(model, sub, o["samples_per_length"], o["seed"])}


def _paths(model, data, o):
    counts = path_lengths(model, weighted=bool(o["weighted"]))
    return {"paths": [{"length": k, "count": c} for k, c in enumerate(counts)]}


def _register_builtins() -> None:
    def add(name, compute, plots, description, options=None, **kw):
        register_study(name, compute, plots, options=options, description=description, _builtin=True, **kw)

    add("lesion", _lesion, {"lesion": P.plot_lesion, "lesion_block": P.plot_lesion},
        "delete each unit (table lesion) or block (lesion_block) at test time; error vs the intact network",
        {"granularity": Option("unit", Spec("choice", choices=("unit", "block", "both")),
                               "unit | block | both")})
    add("lesion_random", lambda m, d, o: {"lesion_random": lesion_random(m, d, list(o["ks"]), o["trials"], o["seed"])},
        P.plot_lesion_random, "delete k random non-entry units, for each k of ks; error per trial",
        {"ks": Option([1, 2, 4, 8, 12, 16, 20], Spec("ints", low=1), "numbers of units deleted at random"),
         "trials": TRIALS, "seed": SEED})
    add("reorder", lambda m, d, o: {"reorder": reorder(m, d, list(o["swaps"]), o["trials"], o["seed"])},
        P.plot_reorder, "swap random pairs of blocks within a stage; error against Kendall tau",
        {"swaps": Option([1, 2, 4, 8, 16], Spec("ints", low=1), "numbers of block swaps"),
         "trials": TRIALS, "seed": SEED})
    add("paths", _paths, P.plot_paths, "exact path-length distribution of the unravelled network",
        {"weighted": Option(False, BOOL, "weight each path by its coefficients")},
        needs_checkpoint=False, needs_data=False)
    add("effective", _effective, P.plot_effective, "input-gradient norm along sampled single paths of each length",
        {"samples_per_length": Option(1000, POSITIVE_INT, "paths sampled per length"),
         "effective_images": Option(256, POSITIVE_INT, "images the gradients are taken on"),
         "seed": SEED})
    add("responses", lambda m, d, o: {"responses": responses(m, d)}, P.plot_responses,
        "standard deviation of every 3x3 layer's response")
    add("refinement", lambda m, d, o: {"refinement": refinement(m, d)}, P.plot_refinement,
        "the trained head applied to every block's output")
    add("robustness", lambda m, d, o: {"robustness": robustness(m, d, list(o["sigmas"]), o["seed"])},
        P.plot_robustness, "accuracy and calibration under Gaussian input noise",
        {"sigmas": Option([0.0, 0.02, 0.05, 0.1, 0.2, 0.3], Spec("reals", low=0),
                          "noise standard deviations (pixels in [0, 1])"),
         "seed": SEED})


_register_builtins()
