"""Lesion studies (Veit et al. 2016, Sec. 4): delete units or blocks at test time, reorder blocks.

Deleting a unit sets its increment k_i to zero (a ``SwitchOff`` block hook), so it works for every scheme:
in an Euler block that leaves the skip, in an RK block the other increments still see the remaining ones, in a
multistep block F_n = 0 in every later step that uses it (the carried states stay).
``lesion_single`` reuses the activations before the lesioned block (the shared prefix is computed once per
batch), so the full study costs about half of one forward pass per lesion.
"""

from __future__ import annotations

import itertools
import random

from ..errors import ConfigError
from ..nn import NestedUnit, SchemeBlock, SwitchOff, hooked
from ..nn.multistep import MultistepBlock
from .common import EvalData, error_and_loss, evaluating, score


def lesion_targets(model, granularity: str = "unit") -> list[dict]:
    """What can be deleted: every unit (``unit``) or every block (``block``), in forward order."""
    blocks = list(model.blocks())
    if granularity == "block":  # every increment off (a multistep block: every unit, Σα x_(n-j) left)
        return [{"address": address, "block_index": i, "switches": [(block, frozenset(range(len(block.active))))],
                 "entry": spec.entry, "downsampling": spec.entry and i > 0 and _changes_shape(block),
                 "scheme": spec.scheme, "units": spec.units}
                for i, (address, block, spec) in enumerate(blocks) if isinstance(block, SchemeBlock | MultistepBlock)]
    by_address = {address: (i, block) for i, (address, block, _) in enumerate(blocks)}
    targets = []
    for address, _unit, info in model.units():
        if info.ode:
            continue
        index, owner = by_address[f"s{info.stage}.b{info.block}"]
        inc = info.path[0] - 1
        for step in info.path[1:]:  # descend into nested units
            owner, inc = owner.unit(inc).block, step - 1
        targets.append({"address": address, "block_index": index, "switches": [(owner, frozenset({inc}))],
                        "entry": info.entry, "downsampling": info.downsampling, "scheme": info.scheme, "units": 1})
    return targets


def _changes_shape(block) -> bool:
    unit = block.unit(0)
    unit = unit.block.unit(0) if isinstance(unit, NestedUnit) else unit
    return getattr(unit, "downsampling", False)


def switched_off(switches):
    """A context in which the increments of ``switches`` (``[(block, increments)]``) are switched off."""
    off: dict = {}
    for block, incs in switches:
        off[block] = off.get(block, frozenset()) | incs
    return hooked({block: SwitchOff(incs) for block, incs in off.items()})


def _through(model, blocks, h):
    """The logits of ``blocks`` (modules, in the order given) applied to ``h``, then the final layers and head."""
    for block in blocks:
        h = block(h)
    return model.forward_head(model.forward_final(h))


def lesion_single(model, data, granularity: str = "unit", reuse_prefix: bool = True) -> list[dict]:
    """Delete each unit (or block) alone; error (a fraction in [0, 1]) and loss vs the intact network, one record
    per target."""
    data = EvalData.wrap(data)
    blocks = [block for _, block, _ in model.blocks()]
    targets = lesion_targets(model, granularity)
    base_err, base_loss = error_and_loss(model, data)
    tallies = [[0, 0.0] for _ in targets]
    n = data.size
    with evaluating(model):
        for x, y in data.batches:
            if reuse_prefix:  # the input of block i is tap i (tap 0: the stem output)
                inputs = model.forward_intermediates(x, indices=list(range(len(blocks))), level="block",
                                                     stop_early=True, intermediates_only=True)
            for t, tally in zip(targets, tallies, strict=True):
                with switched_off(t["switches"]):
                    i = t["block_index"]
                    logits = _through(model, blocks[i:], inputs[i]) if reuse_prefix else model(x)
                c, l = score(logits, y)
                tally[0] += c
                tally[1] += l
    errors = [1 - correct / n for correct, _ in tallies]
    return [{"address": t["address"], "granularity": granularity, "scheme": t["scheme"], "entry": t["entry"],
             "downsampling": t["downsampling"], "units": t["units"], "error": err, "delta_error": err - base_err,
             "loss": loss / n, "intact_error": base_err, "intact_loss": base_loss}
            for t, err, (_, loss) in zip(targets, errors, tallies, strict=True)]


def lesion_random(model, data, ks=(1, 2, 4, 8), trials: int = 5, seed: int = 0,
                  include_entry: bool = False) -> list[dict]:
    """Delete k random units at once (entry units excluded unless asked), ``trials`` draws per k."""
    data = EvalData.wrap(data)
    pool = [t for t in lesion_targets(model, "unit") if include_entry or not t["entry"]]
    rng = random.Random(seed)
    base_err, _ = error_and_loss(model, data)
    records = []
    for k in ks:
        if k > len(pool):
            raise ConfigError(f"lesion_random cannot delete {k} units: only {len(pool)} non-entry units are "
                              "eligible (include_entry=True adds the entry units, or use smaller ks).")
        for trial in range(trials):
            chosen = rng.sample(pool, k)
            switches = [s for t in chosen for s in t["switches"]]
            with switched_off(switches):
                err, loss = error_and_loss(model, data)
            records.append({"k": k, "trial": trial, "error": err, "loss": loss, "intact_error": base_err,
                            "deleted": " ".join(t["address"] for t in chosen)})
    return records


def kendall_tau(order: list[int]) -> float:
    """Kendall's tau between ``order`` and the identity order."""
    n = len(order)
    if n < 2:
        return 1.0
    s = sum(1 if order[i] < order[j] else -1 for i, j in itertools.combinations(range(n), 2))
    return s / (n * (n - 1) / 2)


def reorder(model, data, swaps=(1, 2, 4, 8), trials: int = 5, seed: int = 0) -> list[dict]:
    """Swap random pairs of equal-shape (non-entry) blocks within a stage; error vs Kendall tau of the order."""
    data = EvalData.wrap(data)
    blocks = list(model.blocks())
    stage_of = [int(a.split(".")[0][1:]) for a, _, _ in blocks]
    movable = [i for i, (_, _, spec) in enumerate(blocks) if not spec.entry]
    rng = random.Random(seed)
    records = []
    for n_swaps in swaps:
        for trial in range(trials):
            order = list(range(len(blocks)))
            for _ in range(n_swaps if movable else 0):
                i = rng.choice(movable)
                partners = [j for j in movable if j != i and stage_of[j] == stage_of[i]]
                if partners:
                    j = rng.choice(partners)
                    order[i], order[j] = order[j], order[i]

            def forward(x, order=order):
                return _through(model, [blocks[i][1] for i in order], model.forward_stem(x))

            err, loss = error_and_loss(model, data, forward)
            moved = [order[i] for i in movable]
            records.append({"swaps": n_swaps, "trial": trial, "kendall_tau": kendall_tau(moved), "error": err,
                            "loss": loss})
    return records

