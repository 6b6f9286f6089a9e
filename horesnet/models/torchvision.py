"""torchvision ResNet weights on any scheme's network of the same depth (docs/torchvision_weights.md).

An ImageNet ResNet here holds the same tensors as torchvision's: units in forward order, their convs and
BatchNorms in forward order, projection shortcuts where a stage changes shape, the linear head. Five renames map
the two layouts one to one:

    conv1            -> stem.0                    bn1       -> stem.1
    layer{L}.{i}.conv{j} / .bn{j}  -> <unit>.convs.{j-1} / <unit>.norms.{j-1}   (the i-th unit of stage L)
    layer{L}.{i}.downsample        -> <block>.shortcut     (the block whose first unit is that unit)
    fc               -> fc

Because every scheme keeps the units of a stage in the same order (docs/design.md, "Networks and the equal-depth
rule"), the same mapping initialises a midpoint or RK4 network of that depth from pretrained Euler weights. The
file is read with ``torch.load(weights_only=True)``: tensors and plain containers only, never code.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError
from ..files import load_tensors
from ..nn.multistep import MultistepBlock
from ..nn.shortcuts import ProjectionShortcut

_UNIT_KEY = re.compile(r"^layer(\d+)\.(\d+)\.(conv|bn)(\d+)\.(.+)$")
_DOWN_KEY = re.compile(r"^layer(\d+)\.(\d+)\.downsample\.([01])\.(.+)$")
_STEM = {"conv1": "stem.0", "bn1": "stem.1"}
OPTIONAL = ("num_batches_tracked",)  # torchvision's older files predate this buffer


def _unwrap(state_dict) -> dict:
    """The tensor dict itself, also when wrapped as ``{"state_dict": ...}`` / ``{"model": ...}``."""
    for key in ("state_dict", "model"):
        if isinstance(state_dict, Mapping) and isinstance(state_dict.get(key), Mapping):
            state_dict = state_dict[key]
    if not isinstance(state_dict, Mapping) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ConfigError("a torchvision state dict maps names to tensors; got "
                          f"{type(state_dict).__name__} holding other values.")
    return dict(state_dict)


def _units_per_stage(keys) -> list[int]:
    units: dict[int, set[int]] = {}
    for key in keys:
        m = _UNIT_KEY.match(key)
        if m:
            units.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    return [len(units[k]) for k in sorted(units)]


def torchvision_names(model: nn.Module) -> dict[str, str]:
    """``{torchvision key: horesnet key}`` for every tensor of ``model`` (an ImageNet network of scheme blocks,
    original placement, BatchNorm; unit i of stage L in forward order is torchvision's ``layer{L}.{i-1}``)."""
    cfg = model.config
    problems = []
    if cfg.get("arch") != "imagenet":
        problems.append(f"arch={cfg.get('arch')!r} (torchvision's ResNets are arch='imagenet')")
    if cfg.get("placement") != "original":
        problems.append(f"placement={cfg.get('placement')!r} (torchvision's units are 'original')")
    if cfg.get("norm") != "batch":
        problems.append(f"norm={cfg.get('norm')!r} (torchvision's units use 'batch')")
    for key, bad in (("block", "ode"), ("tied", True)):
        if cfg.get(key) == bad:
            problems.append(f"{key}={bad!r} (one torchvision unit per horesnet unit is needed)")
    if cfg.get("inner"):
        problems.append(f"inner={cfg['inner']!r} (nested units hold more units than torchvision's network)")
    if cfg.get("shortcut") != "B":
        problems.append(f"shortcut={cfg.get('shortcut')!r} (torchvision projects where a stage changes shape: "
                        "shortcut='B')")
    if problems:
        raise ConfigError("torchvision weights do not fit this network: " + "; ".join(problems) + ".")
    names = {id(m): n for n, m in model.named_modules()}
    out = {f"{tv}.{p}": f"{ours}.{p}" for tv, ours in _STEM.items()
           for p, _ in model.get_submodule(ours).named_parameters()}
    out.update({f"bn1.{b}": f"stem.1.{b}" for b, _ in model.get_submodule("stem.1").named_buffers()})
    counters: dict[int, int] = {}
    for address, block, _spec in model.blocks():
        stage = int(address.split(".")[0][1:])
        for i in range(block.increments if isinstance(block, MultistepBlock) else block.scheme.increments):
            unit, tv = block.unit(i), f"layer{stage}.{counters.get(stage, 0)}"
            counters[stage] = counters.get(stage, 0) + 1
            for local in unit.state_dict():
                kind, j, rest = local.split(".", 2)  # convs.0.weight / norms.2.running_mean
                out[f"{tv}.{'conv' if kind == 'convs' else 'bn'}{int(j) + 1}.{rest}"] = f"{names[id(unit)]}.{local}"
            if i == 0 and isinstance(getattr(block, "shortcut", None), ProjectionShortcut):
                for local in block.shortcut.state_dict():
                    out[f"{tv}.downsample.{local}"] = f"{names[id(block.shortcut)]}.{local}"
    out.update({f"fc.{p}": f"fc.{p}" for p, _ in model.fc.named_parameters()})
    return out


def load_torchvision_state_dict(model: nn.Module, state_dict, head: bool = True) -> nn.Module:
    """Copy a torchvision ResNet state dict (a dict of tensors, or a path read with ``weights_only=True``) into
    ``model``, a network of any scheme with torchvision's depth, ``arch='imagenet'``, ``shortcut='B'`` and, for
    bottleneck units, ``stride_in_3x3=True`` (torchvision's ResNet V1.5). ``head=False`` keeps ``model``'s own
    classifier (for a different number of classes). Anything that does not match -- depth, variant, a key, a
    shape -- is a ConfigError naming it; ``model`` is only changed when everything matches. Returns ``model``."""
    if isinstance(state_dict, str | Path):
        state_dict = load_tensors(state_dict)
    given = _unwrap(state_dict)
    cfg = model.config
    theirs, ours = _units_per_stage(given), list(model.layout.units_per_stage)
    convs = 3 if any(".conv3." in k for k in given) else 2  # bottleneck units hold three convs, basic ones two
    depth = convs * sum(theirs) + 2  # weighted layers: the units' convs, the stem conv and the head
    if not theirs:
        raise ConfigError("the state dict holds no torchvision ResNet unit (no 'layer<L>.<i>.conv<j>' key); "
                          f"its first keys are {sorted(given)[:5]}.")
    if theirs != ours or depth != model.layout.depth:
        raise ConfigError(f"the torchvision state dict is a ResNet-{depth} ({theirs} units per stage); this "
                          f"network is depth={model.layout.depth} ({ours}). Build it with depth={depth}.")
    names = torchvision_names(model)
    if (cfg.get("unit") or model.layout.unit) == "bottleneck" and not cfg.get("stride_in_3x3"):
        raise ConfigError("torchvision's bottleneck ResNets put the stride on the 3x3 conv (ResNet V1.5): build "
                          "with stride_in_3x3=True to load their weights.")
    if not head:
        names = {tv: h for tv, h in names.items() if not tv.startswith("fc.")}
        given = {k: v for k, v in given.items() if not k.startswith("fc.")}
    unknown = sorted(set(given) - set(names))
    missing = sorted(k for k in set(names) - set(given) if k.rsplit(".", 1)[-1] not in OPTIONAL)
    if unknown or missing:
        raise ConfigError(f"the torchvision state dict does not match this network: unknown key(s) "
                          f"{unknown[:5] or 'none'}, missing key(s) {missing[:5] or 'none'}"
                          f"{' (a basic/bottleneck mismatch?)' if unknown and missing else ''}.")
    target = model.state_dict()
    for tv, value in given.items():
        have = target[names[tv]]
        if have.shape != value.shape:
            hint = " (head=False keeps this network's classifier)" if tv.startswith("fc.") else \
                " (width must be 1)"
            raise ConfigError(f"shape mismatch at {tv!r}: the file holds {tuple(value.shape)}, the network's "
                              f"{names[tv]!r} is {tuple(have.shape)}{hint}.")
    with torch.no_grad():
        for tv, value in given.items():
            target[names[tv]].copy_(value)
    return model


def to_torchvision_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model``'s tensors under torchvision's names (the inverse of :func:`load_torchvision_state_dict`)."""
    target = model.state_dict()
    return {tv: target[ours].detach().clone() for tv, ours in torchvision_names(model).items()}


def load_weights(model: nn.Module, path) -> nn.Module:
    """``weights=PATH`` of ``horesnet.fit``: :func:`load_torchvision_state_dict` from a file, its ConfigError
    prefixed with the key and the path. A classifier for another number of classes (ImageNet's 1000 against the
    data's) is left out: the network keeps its fresh head, as when fine-tuning, and says so."""
    try:
        given = _unwrap(load_tensors(path))
        fc = given.get("fc.weight")
        head = fc is None or fc.shape[0] == model.num_classes
        if not head:
            print(f"horesnet: weights={path}: its classifier has {fc.shape[0]} classes, the network "
                  f"{model.num_classes}; every other tensor is loaded and the classifier starts fresh.",
                  file=sys.stderr)
        return load_torchvision_state_dict(model, given, head=head)
    except ConfigError as err:
        raise ConfigError(f"weights={path}: {err}") from None
