"""Layer responses (He et al. 2015, Fig. 7): the standard deviation of each 3x3 layer's response after BN and
before the nonlinearity, in layer order and ranked."""

from __future__ import annotations

from collections import defaultdict

from torch import nn

from .common import EvalData, evaluating


def response_layers(model) -> list[tuple[str, nn.Module]]:
    """``(name, module whose output is the response)`` for every 3x3 conv, in forward order (tied units repeat)."""
    layers, stem = [], [*model.stem, None]
    i = next((i for i, m in enumerate(stem) if isinstance(m, nn.Conv2d)), None)
    if i is not None and stem[i].kernel_size == (3, 3):  # the stem's first conv, after its norm if one follows
        norm = isinstance(stem[i + 1], nn.modules.batchnorm._BatchNorm | nn.GroupNorm)
        layers.append(("stem.conv", stem[i + 1] if norm else stem[i]))
    for address, unit, info in model.units():
        if info.ode or not hasattr(unit, "responses"):
            continue
        for i, (conv, after) in enumerate(unit.responses(), 1):
            if conv.kernel_size == (3, 3):
                layers.append((f"{address}.conv{i}", after))
    return layers


def responses(model, data) -> list[dict]:
    """One record per 3x3 layer: std of its response over all images, channels and positions."""
    data = EvalData.wrap(data)
    layers = response_layers(model)
    slots = defaultdict(list)  # module -> indices into layers, in call order
    for i, (_, module) in enumerate(layers):
        slots[module].append(i)
    sums = [[0.0, 0.0, 0] for _ in layers]
    calls = defaultdict(int)

    def hook(module, inputs, out):
        i = slots[module][calls[module] % len(slots[module])]
        calls[module] += 1
        v = out.detach().double()
        sums[i][0] += float(v.sum())
        sums[i][1] += float((v * v).sum())
        sums[i][2] += v.numel()

    handles = [m.register_forward_hook(hook) for m in slots]
    try:
        with evaluating(model):
            for x, _ in data.batches:
                calls.clear()
                model(x)
    finally:
        for h in handles:
            h.remove()
    records = []
    for i, ((name, _), (s, ss, n)) in enumerate(zip(layers, sums, strict=True)):
        mean = s / n
        records.append({"layer": i + 1, "name": name, "std": max(ss / n - mean * mean, 0.0) ** 0.5})
    for rank, r in enumerate(sorted(records, key=lambda r: -r["std"]), 1):
        r["rank"] = rank
    return records
