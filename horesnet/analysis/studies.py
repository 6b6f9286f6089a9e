"""The built-in studies of ``python -m horesnet.analyze`` (docs/design.md, "Analysis"), registered through the same
``register_study`` a plugin uses (docs/extending_studies.md): each wires a public analysis function, its plots and
its command-line options."""

from __future__ import annotations

from collections import Counter

from ..nn.multistep import MultistepBlock
from ..spec import BOOL, COUNT, POSITIVE_INT, Spec
from . import plots as P
from .common import EvalData
from .effective import effective_paths
from .lesion import lesion_random, lesion_single, lesion_targets, reorder
from .paths import multistep_reason, path_lengths
from .refinement import refinement
from .registry import STUDIES, Option, register_study
from .responses import responses
from .robustness import robustness

SEED = Option(0, COUNT, "random seed of the sampled deletions, orders, paths and noise")
TRIALS = Option(5, POSITIVE_INT, "random draws per setting")


def _lesion(model, data, o):
    grains = ("unit", "block") if o["granularity"] == "both" else (o["granularity"],)
    return {("lesion" if g == "unit" else "lesion_block"): lesion_single(model, data, g) for g in grains}


def _first(data: EvalData, n: int) -> list:
    """The first ``n`` images of ``data`` as batches."""
    out = []
    for x, y in data.batches:
        if n <= 0:
            break
        out.append((x[:n], y[:n]))
        n -= len(y)
    return out


def _effective(model, data, o):
    sub = EvalData(_first(data, o["effective_images"]), data.pixel_std, data.name)
    return {"effective": effective_paths(model, sub, o["samples_per_length"], o["seed"])}


def _paths(model, data, o):
    counts = path_lengths(model, weighted=bool(o["weighted"]))
    return {"paths": [{"length": k, "count": c} for k, c in enumerate(counts)]}


def deletable_units(model) -> int:
    """Units that ``lesion_random`` may delete: the non-entry units."""
    return sum(not t["entry"] for t in lesion_targets(model, "unit"))


def swappable_pairs(model) -> int:
    """Pairs of non-entry blocks in the same stage: what ``reorder`` can swap."""
    per_stage = Counter(address.split(".")[0] for address, _block, spec in model.blocks() if not spec.entry)
    return sum(n * (n - 1) // 2 for n in per_stage.values())


def sized(n: int) -> list[int]:
    """1, 2, 4, ... up to ``n``, and ``n`` itself: a default sized to the network."""
    return sorted({2 ** i for i in range(max(n, 1).bit_length()) if 2 ** i <= n} | ({n} if n else set()))


def _ks(model, o) -> list[int]:
    return list(o["ks"]) if o["ks"] is not None else sized(deletable_units(model))


def _swaps(model, o) -> list[int]:
    return list(o["swaps"]) if o["swaps"] is not None else sized(swappable_pairs(model))


def _lesion_random_applies(model, o) -> str | None:
    n = deletable_units(model)
    if n == 0:
        return "the network has no non-entry unit to delete (every stage holds only its entry unit)"
    too_many = [k for k in _ks(model, o) if k > n]
    return (f"ks={too_many} exceed the {n} deletable non-entry units; use ks up to {n} (or ks=null: sized to the "
            "network)") if too_many else None


def _effective_applies(model, o) -> str | None:
    multistep = [a for a, block, _ in model.blocks() if isinstance(block, MultistepBlock)]
    return multistep_reason(multistep) if multistep else None


def _reorder_applies(model, o) -> str | None:
    return ("no two non-entry blocks share a stage, so no order can change (every Kendall tau would be 1)"
            if swappable_pairs(model) == 0 else None)


def _add(name, compute, plots, description, options=None, **kw):
    register_study(name, compute, plots, options=options, description=description, **kw)


_add("lesion", _lesion, {"lesion": P.plot_lesion, "lesion_block": P.plot_lesion},
     "delete each unit (table lesion) or block (lesion_block) at test time; error vs the intact network",
     {"granularity": Option("unit", Spec("choice", choices=("unit", "block", "both")), "unit | block | both")},
     cost=lambda m, o: 4 if o["granularity"] == "both" else 2)
_add("lesion_random", lambda m, d, o: {"lesion_random": lesion_random(m, d, _ks(m, o), o["trials"], o["seed"])},
     P.plot_lesion_random, "delete k random non-entry units, for each k of ks; error per trial",
     {"ks": Option(None, Spec("ints", low=1, nullable=True),
                   "numbers of units deleted at random (null: 1, 2, 4, ... up to the deletable units)"),
      "trials": TRIALS, "seed": SEED},
     applies=_lesion_random_applies, cost=lambda m, o: 1 + len(_ks(m, o)) * o["trials"])
_add("reorder", lambda m, d, o: {"reorder": reorder(m, d, _swaps(m, o), o["trials"], o["seed"])},
     P.plot_reorder, "swap random pairs of blocks within a stage; error against Kendall tau",
     {"swaps": Option(None, Spec("ints", low=1, nullable=True),
                      "numbers of block swaps (null: 1, 2, 4, ... up to the swappable pairs)"),
      "trials": TRIALS, "seed": SEED},
     applies=_reorder_applies, cost=lambda m, o: len(_swaps(m, o)) * o["trials"])
_add("paths", _paths, P.plot_paths, "exact path-length distribution of the unravelled network",
     {"weighted": Option(False, BOOL, "weight each path by its coefficients")},
     needs_checkpoint=False, needs_data=False)
_add("effective", _effective, P.plot_effective, "input-gradient norm along sampled single paths of each length",
     {"samples_per_length": Option(1000, POSITIVE_INT, "paths sampled per length"),
      "effective_images": Option(256, POSITIVE_INT, "images the gradients are taken on"),
      "seed": SEED}, applies=_effective_applies)
_add("responses", lambda m, d, o: {"responses": responses(m, d)}, P.plot_responses,
     "standard deviation of every 3x3 layer's response", cost=lambda m, o: 1)
_add("refinement", lambda m, d, o: {"refinement": refinement(m, d)}, P.plot_refinement,
     "the trained head applied to every block's output", cost=lambda m, o: 1)
_add("robustness", lambda m, d, o: {"robustness": robustness(m, d, list(o["sigmas"]), o["seed"])},
     P.plot_robustness, "accuracy and calibration under Gaussian input noise",
     {"sigmas": Option([0.0, 0.02, 0.05, 0.1, 0.2, 0.3], Spec("reals", low=0),
                       "noise standard deviations (pixels in [0, 1])"),
      "seed": SEED}, cost=lambda m, o: len(o["sigmas"]))

STUDIES.lock_builtins()  # what is registered so far is horesnet's own: never replaced, never removed
