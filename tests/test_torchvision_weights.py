"""torchvision ResNet weights on every scheme's network of the same depth (docs/torchvision_weights.md).

torchvision does not import next to the CPU torch build here, so the reference is its documented layout, written
out below from torchvision/models/resnet.py's structure: ``conv1``/``bn1``, ``layer1..4`` of Bottleneck units
(``conv1..3``/``bn1..3``, stride on ``conv2`` -- ResNet V1.5 -- and a ``downsample`` 1x1 conv + BatchNorm on the
first unit of every layer), ``fc``. A ResNet-50 has 320 tensors (161 parameters, 53 BatchNorms x 3 buffers).
The forward reference is a torchvision-semantics ResNet-50 written with ``torch.nn.functional`` on that dict.
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.nn.functional as F

import horesnet
from horesnet import ConfigError, load_torchvision_state_dict, to_torchvision_state_dict

LAYERS_50 = (3, 4, 6, 3)
BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def documented_resnet50() -> dict[str, tuple[int, ...]]:
    """Key -> shape of torchvision's resnet50 state dict (Bottleneck, expansion 4, widths 64/128/256/512)."""
    shapes = {"conv1.weight": (64, 3, 7, 7), **{f"bn1.{k}": (64,) for k in BN_KEYS}}
    inplanes = 64
    for layer, (blocks, planes) in enumerate(zip(LAYERS_50, (64, 128, 256, 512), strict=True), 1):
        for i in range(blocks):
            p = f"layer{layer}.{i}"
            convs = [(planes, inplanes, 1, 1), (planes, planes, 3, 3), (planes * 4, planes, 1, 1)]
            for j, shape in enumerate(convs, 1):
                shapes[f"{p}.conv{j}.weight"] = shape
                shapes.update({f"{p}.bn{j}.{k}": (shape[0],) for k in BN_KEYS})
            if i == 0:
                shapes[f"{p}.downsample.0.weight"] = (planes * 4, inplanes, 1, 1)
                shapes.update({f"{p}.downsample.1.{k}": (planes * 4,) for k in BN_KEYS})
            inplanes = planes * 4
    shapes.update({"fc.weight": (1000, 2048), "fc.bias": (1000,)})
    return {k: tuple(s) if not k.endswith("num_batches_tracked") else () for k, s in shapes.items()}


def random_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors of the documented shapes (He-scaled convs, BatchNorm scales near 1, positive variances)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in documented_resnet50().items():
        noise = torch.randn(shape, generator=g)
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            out[key] = torch.rand(shape, generator=g) + 0.5
        elif len(shape) == 4:
            out[key] = noise * (2.0 / (shape[1] * shape[2] * shape[3])) ** 0.5
        elif key.endswith(".weight") and len(shape) == 1:
            out[key] = 1.0 + 0.1 * noise
        else:
            out[key] = 0.1 * noise
    return out


def torchvision_forward(sd: dict, x: torch.Tensor) -> torch.Tensor:
    """torchvision's ResNet-50 forward (eval mode), written from its documented structure."""
    def bn(x, p):
        return F.batch_norm(x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"], sd[f"{p}.bias"],
                            False, 0.0, 1e-5)

    x = F.relu(bn(F.conv2d(x, sd["conv1.weight"], stride=2, padding=3), "bn1"))
    x = F.max_pool2d(x, 3, 2, 1)
    for layer, blocks in enumerate(LAYERS_50, 1):
        for i in range(blocks):
            p, stride = f"layer{layer}.{i}", (2 if i == 0 and layer > 1 else 1)
            out = F.relu(bn(F.conv2d(x, sd[f"{p}.conv1.weight"]), f"{p}.bn1"))
            out = F.relu(bn(F.conv2d(out, sd[f"{p}.conv2.weight"], stride=stride, padding=1), f"{p}.bn2"))
            out = bn(F.conv2d(out, sd[f"{p}.conv3.weight"]), f"{p}.bn3")
            skip = bn(F.conv2d(x, sd[f"{p}.downsample.0.weight"], stride=stride), f"{p}.downsample.1") \
                if i == 0 else x
            x = F.relu(out + skip)
    return F.linear(x.mean(dim=(2, 3)), sd["fc.weight"], sd["fc.bias"])


def resnet50(block: str = "euler", **kw):
    return horesnet.build_model(arch="imagenet", depth=50, block=block, num_classes=kw.pop("num_classes", 1000),
                                stride_in_3x3=kw.pop("stride_in_3x3", True), **kw).eval()


@pytest.fixture(scope="module")
def weights():
    return random_state_dict()


def test_imagenet_defaults_to_shortcut_b_and_has_torchvisions_320_tensors():
    model = resnet50()
    assert model.config["shortcut"] == "B"
    mine = to_torchvision_state_dict(model)
    assert len(mine) == 320
    assert {k: tuple(v.shape) for k, v in mine.items()} == documented_resnet50()


@pytest.mark.parametrize("block", ["euler", "midpoint", "rk4"])
def test_torchvision_resnet50_loads_into_every_scheme_and_round_trips(block, weights):
    model = load_torchvision_state_dict(resnet50(block), weights)
    back = to_torchvision_state_dict(model)
    assert back.keys() == weights.keys()
    assert all(torch.equal(back[k], weights[k]) for k in weights)
    # where the tensors landed, read through the module tree rather than the mapping
    assert torch.equal(model.stem[0].weight, weights["conv1.weight"])
    assert torch.equal(model.stages[3][0].shortcut[0].weight, weights["layer4.0.downsample.0.weight"])
    units = [u for _, u, _ in model.units()]
    assert torch.equal(units[-1].convs[2].weight, weights["layer4.2.conv3.weight"])
    assert torch.equal(units[3].norms[0].running_var, weights["layer2.0.bn1.running_var"])


def test_loaded_euler50_computes_torchvisions_function(weights):
    model = load_torchvision_state_dict(resnet50(), weights)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, reference = model(x), torchvision_forward(weights, x)
    assert torch.allclose(ours, reference, atol=1e-4, rtol=1e-4), (ours - reference).abs().max()


def test_file_round_trip_reads_with_weights_only(tmp_path, weights):
    path = tmp_path / "resnet50.pth"
    torch.save({"state_dict": weights}, path)
    model = load_torchvision_state_dict(resnet50("midpoint"), path)
    assert torch.equal(model.fc.weight, weights["fc.weight"])


class _Payload:
    def __reduce__(self):
        return (os.system, ("true",))


@pytest.mark.parametrize("kw, words", [
    (dict(depth=34), ["ResNet-50", "depth=50", "depth=34"]),  # same units per stage, basic units
    (dict(depth=18), ["ResNet-50", "[3, 4, 6, 3]", "[2, 2, 2, 2]"]),
    (dict(shortcut="A"), ["shortcut='A'", "'B'"]),
    (dict(stride_in_3x3=False), ["stride_in_3x3=True"]),
    (dict(num_classes=10), ["fc.weight", "(1000, 2048)", "head=False"]),
    (dict(placement="full_preact"), ["placement='full_preact'", "'original'"]),
    (dict(tied=True, block="rk4"), ["tied=True"]),
], ids=["depth34", "depth18", "shortcutA", "v1", "classes", "preact", "tied"])
def test_mismatched_network_is_refused_by_name(kw, words, weights):
    depth = kw.pop("depth", 50)
    model = horesnet.build_model(arch="imagenet", depth=depth, num_classes=kw.pop("num_classes", 1000),
                                 stride_in_3x3=kw.pop("stride_in_3x3", True), **kw)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ConfigError) as err:
        load_torchvision_state_dict(model, weights)
    for word in words:
        assert word in str(err.value), str(err.value)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing half-loaded


def test_head_false_keeps_the_models_classifier(weights):
    model = resnet50(num_classes=10)
    fc = model.fc.weight.clone()
    load_torchvision_state_dict(model, weights, head=False)
    assert torch.equal(model.fc.weight, fc) and torch.equal(model.stem[0].weight, weights["conv1.weight"])


def test_unknown_key_bad_path_and_pickle_payload_are_refused(tmp_path, weights):
    model = resnet50()
    with pytest.raises(ConfigError, match="unknown key.*head.extra.weight"):
        load_torchvision_state_dict(model, {**weights, "head.extra.weight": weights["fc.weight"]})
    with pytest.raises(ConfigError, match="nowhere.pth.*does not exist"):
        load_torchvision_state_dict(model, tmp_path / "nowhere.pth")
    evil = tmp_path / "evil.pth"
    torch.save({"conv1.weight": _Payload()}, evil)
    with pytest.raises(ConfigError, match="refused.*weights_only"):
        load_torchvision_state_dict(model, evil)


def test_fit_weights_starts_a_midpoint_resnet18_from_euler_weights(tmp_path, capsys):
    """``horesnet.fit weights=PATH``: a midpoint ResNet-18 (entry=scheme) starts from a torchvision-format Euler
    ResNet-18 (its 1000-class head left out for the data's 10 classes); with lr ~ 0 the weights stay the file's."""

    from ._training_helpers import CLI_TINY, fit

    source = horesnet.build_model(arch="imagenet", depth=18, num_classes=1000)
    path = tmp_path / "resnet18.pth"
    torch.save(to_torchvision_state_dict(source), path)
    overrides = [o for o in CLI_TINY if not o.startswith(("depth=", "width="))] + [
        "arch=imagenet", "depth=18", "block=midpoint", "entry=scheme", f"weights={path}", "optim.lr=1e-12",
        "optim.momentum=0",
        "data.limit_train=8", "data.limit_val=8", "data.limit_test=8", "data.batch_size=4", "data.eval_batch_size=8"]
    fit(tmp_path / "run", overrides)
    assert "classifier starts fresh" in capsys.readouterr().err
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert torch.allclose(state["model.stem.0.weight"], source.stem[0].weight, atol=1e-6)
    # entry=scheme: each stage is one midpoint block of 2 units, so torchvision's layer4.1 is its second unit
    assert torch.allclose(state["model.stages.3.0.units.1.convs.1.weight"],
                          source.stages[3][1].units[0].convs[1].weight, atol=1e-6)
