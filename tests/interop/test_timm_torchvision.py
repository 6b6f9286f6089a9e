"""horesnet against the real timm and torchvision (the interop environment: bash scripts/setup_interop, then
``.venv-interop/bin/python -m pytest -n 2 tests/interop``; docs/install.md). Skipped where they are not installed.

timm's own model checks (forward, backward with every parameter getting a gradient, default config, features_only
with every feature wrapper) on every registered scheme through ``timm.create_model``; torchvision's feature
extractors; torchvision ResNet weights in and out exactly. References are the eager horesnet network built with
the same seed, and torchvision's own ResNet. Small: width 0.25, batch 2, 32x32 (CIFAR) and 64x64 (ImageNet).
"""

from __future__ import annotations

import pytest
import torch

timm = pytest.importorskip("timm", reason="timm is not installed: the interop tests run in .venv-interop "
                           "(bash scripts/setup_interop, docs/install.md)")
torchvision = pytest.importorskip("torchvision", reason="torchvision is not installed: the interop tests run in "
                                  ".venv-interop (bash scripts/setup_interop, docs/install.md)")

from timm.data import resolve_data_config, resolve_model_data_config  # noqa: E402
from timm.models import FeatureDictNet, FeatureGraphNet, FeatureHookNet, FeatureListNet  # noqa: E402
from timm.models._features import feature_take_indices  # noqa: E402
from torchvision.models._utils import IntermediateLayerGetter  # noqa: E402
from torchvision.models.feature_extraction import create_feature_extractor  # noqa: E402

import horesnet  # noqa: E402
from horesnet import ConfigError  # noqa: E402
from horesnet.models import load_torchvision_state_dict, register_timm_models  # noqa: E402
from horesnet.models.timm_models import timm_model_names  # noqa: E402
from horesnet.models.torchvision import to_torchvision_state_dict  # noqa: E402

NAMES = register_timm_models()
SCHEMES = horesnet.list_schemes()
WIDTH, SIDE = 0.25, 32
WRAPPERS = ["list", "dict", "hook", "fx", "getter"]


def cifar_name(scheme: str) -> tuple[str, int]:
    """The shallowest registered CIFAR network of ``scheme`` and its depth."""
    depth = min(o["depth"] for n, o in timm_model_names([scheme]).items() if o["arch"] == "cifar")
    return f"horesnet_{scheme}_resnet{depth}", depth


def reference(scheme: str, depth: int, seed: int = 0, **kw):
    """The eager network ``timm.create_model`` must equal: build_model with the same options and seed."""
    torch.manual_seed(seed)
    return horesnet.build_model(block=scheme, depth=depth, width=WIDTH, **kw)


def close(a, b):
    """float32 equality up to rounding (the fused backward adds in another order), relative to the scale of ``b``
    (the flagged ho2021 scheme grows activations); the bugs this guards against differ by O(1)."""
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5 * max(1.0, b.abs().max().item()))


def test_registry_lists_every_scheme_at_its_valid_standard_depths():
    assert sorted(timm.list_models("horesnet*")) == NAMES == sorted(timm_model_names())
    for scheme in SCHEMES:
        assert any(n.startswith(f"horesnet_{scheme}_resnet") for n in NAMES), scheme
    assert {"horesnet_euler_resnet20", "horesnet_rk4_resnet56", "horesnet_euler_resnet50",
            "horesnet_rk8_resnet110", "horesnet_rk8_resnet101"} <= set(NAMES)
    assert "horesnet_rk4_resnet20" not in NAMES and "horesnet_rk8_resnet56" not in NAMES  # no block of the scheme
    assert register_timm_models() == NAMES  # again: nothing overwritten, nothing new
    with pytest.raises(RuntimeError, match="Unknown model"):
        timm.create_model("horesnet_rk4_resnet57")


@pytest.mark.parametrize("scheme", SCHEMES)
def test_timm_model_checks_on_every_scheme(scheme):
    """timm's test_model_forward / _backward / _default_cfgs, and equality with the eager network."""
    name, depth = cifar_name(scheme)
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=42, width=WIDTH)
    assert isinstance(model, horesnet.models.ResNet) and model.pretrained_cfg["architecture"] == name
    x = torch.randn(2, 3, SIDE, SIDE)
    ref = reference(scheme, depth, num_classes=42)
    assert model.state_dict().keys() == ref.state_dict().keys()
    model.train()
    out = model(x)
    out.mean().backward()
    assert out.shape == (2, 42) and not torch.isnan(out).any()
    for n, p in model.named_parameters():
        assert p.grad is not None, f"no gradient for {n}"
    ref.train()
    close(out, ref(x))
    model.eval()
    cfg = model.default_cfg
    with torch.no_grad():
        features = model.forward_features(torch.randn(1, *cfg["input_size"]))
        assert features.shape[-2:] == cfg["pool_size"] and features.shape[1] == model.num_features
        model.reset_classifier(0)
        assert model(x).shape == (2, model.num_features)
        model.reset_classifier(0, "")
        assert model(x).shape[-2:] == (SIDE // 4, SIDE // 4)
    state = model.state_dict()
    assert cfg["first_conv"] + ".weight" in state
    assert cfg["classifier"] == "fc"
    data = resolve_model_data_config(model)
    assert data["input_size"] == (3, 32, 32) and data["mean"] == horesnet.models.contract.CIFAR10_MEAN


def features_of(extractor, x):
    out = extractor(x)
    return list(out.values()) if isinstance(out, dict) else list(out)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_features_only_with_every_wrapper_equals_the_network_taps(scheme):
    """timm's test_model_forward_features for list/dict/hook/fx/getter, in training (grad: the fused path) and
    evaluation, against the eager network's forward_intermediates, gradients included."""
    name, depth = cifar_name(scheme)
    for cls in WRAPPERS:
        for train in (True, False):
            torch.manual_seed(0)
            extractor = timm.create_model(name, features_only=True, feature_cls=cls, out_indices=(0, 2, 3),
                                          width=WIDTH)
            ref = reference(scheme, depth).train(train)
            extractor.train(train)
            assert extractor.feature_info.channels() == [4, 8, 16] and extractor.feature_info.reduction() == [1, 2, 4]
            x = torch.randn(2, 3, SIDE, SIDE, requires_grad=True)
            x_ref = x.detach().clone().requires_grad_(True)
            got = features_of(extractor, x)
            want = ref.forward_intermediates(x_ref, indices=[0, 2, 3], intermediates_only=True)
            assert len(got) == 3, (cls, train)
            for g, w in zip(got, want, strict=True):
                close(g, w)
            weights = [torch.randn_like(w) for w in want]
            sum((g * v).sum() for g, v in zip(got, weights, strict=True)).backward()
            sum((w * v).sum() for w, v in zip(want, weights, strict=True)).backward()
            close(x.grad, x_ref.grad)


@pytest.mark.parametrize("arch,depth,side", [("cifar", 56, SIDE), ("imagenet", 50, 64)])
def test_feature_wrappers_and_torchvision_extractors_on_a_built_network(arch, depth, side):
    """The wrappers applied by hand (timm's defaults) and torchvision's extractors, over every feature_info tap."""
    torch.manual_seed(0)
    model = horesnet.build_model(block="rk4", arch=arch, depth=depth, width=WIDTH)
    x = torch.randn(2, 3, side, side)
    names = [info["module"] for info in model.feature_info]
    for train in (True, False):
        model.train(train)
        with torch.no_grad():
            taps = model.forward_intermediates(x, intermediates_only=True)
            n = len(taps)
            wrappers = [FeatureListNet(model, out_indices=range(n), flatten_sequential=True),
                        FeatureDictNet(model, out_indices=range(n), flatten_sequential=True),
                        FeatureHookNet(model, out_indices=range(n), flatten_sequential=True),
                        FeatureGraphNet(model, out_indices=range(n)),
                        create_feature_extractor(model, {m: str(i) for i, m in enumerate(names)})]
            for wrapper in wrappers:
                got = features_of(wrapper, x)
                assert len(got) == n, type(wrapper).__name__
                for g, t in zip(got, taps, strict=True):
                    close(g, t)
            stages = IntermediateLayerGetter(model.stages, {m.removeprefix("stages."): m for m in names[1:]})
            for i, (key, value) in enumerate(stages(taps[0]).items(), 1):
                assert key == names[i]
                close(value, taps[i])
            top = IntermediateLayerGetter(model, {"stem": "stem", "stages": "last"})(x)
            close(top["stem"], taps[0])
            close(top["last"], taps[-1])
            hooked = FeatureHookNet(model, out_indices=range(n))  # timm's default: hooks, the network unchanged
            assert len(features_of(hooked, x)) == n


def test_forward_intermediates_takes_indices_as_timm():
    """The same taps, in the same (forward) order, as timm's own ResNet-18 for every way of giving indices."""
    model = horesnet.build_model(arch="imagenet", depth=18).eval()
    timm_resnet = timm.create_model("resnet18").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        taps = model.forward_intermediates(x, intermediates_only=True)
        for indices in (None, 1, 3, 5, [0], [1, 3], [-1], (0, -2), [4, 0]):
            wanted = sorted(feature_take_indices(5, indices)[0])
            got = model.forward_intermediates(x, indices=indices, intermediates_only=True)
            theirs = timm_resnet.forward_intermediates(x, indices=indices, intermediates_only=True)
            assert [t.shape[1] for t in got] == [t.shape[1] for t in theirs]
            # the same resolutions, but at tap 0 (the stem: reduction 4 here, after the max-pool; 2 in timm)
            assert [(i, g.shape[-1]) for g, i in zip(got, wanted, strict=True) if i] == \
                [(i, t.shape[-1]) for t, i in zip(theirs, wanted, strict=True) if i]
            assert all(torch.equal(g, taps[i]) for g, i in zip(got, wanted, strict=True))


def test_create_model_options_as_timm_clients_pass_them():
    torch.manual_seed(0)
    model = timm.create_model("horesnet_euler_resnet18", num_classes=0, global_pool="", in_chans=1,
                              drop_path_rate=0.1, drop_rate=0.0, width=WIDTH)
    assert model.in_chans == 1 and model.num_classes == 0 and model.config["drop_path_rate"] == 0.1
    assert model(torch.randn(2, 1, 64, 64)).shape == (2, 128, 2, 2)
    assert resolve_data_config({}, model=model)["crop_pct"] == 0.875
    model = timm.create_model("horesnet_euler_resnet18", width=WIDTH)
    assert model.num_classes == 1000 and model.config["arch"] == "imagenet"
    extractor = timm.create_model("horesnet_rk4_resnet50", features_only=True, width=WIDTH)
    assert extractor.feature_info.reduction() == [4, 4, 8, 16, 32]
    assert len(extractor(torch.randn(1, 3, 64, 64))) == 5
    with pytest.raises(ConfigError, match="hosts no pretrained weights.*torchvision"):
        timm.create_model("horesnet_euler_resnet50", pretrained=True)
    with pytest.raises(ConfigError, match="drop_rate"):
        timm.create_model("horesnet_euler_resnet20", drop_rate=0.2)
    with pytest.raises(ConfigError, match="unknown model option.*'colour'"):
        timm.create_model("horesnet_euler_resnet20", colour="blue")


@pytest.mark.parametrize("depth", [18, 50])
def test_torchvision_resnet_weights_round_trip_exactly(depth, tmp_path):
    torch.manual_seed(0)
    theirs = getattr(torchvision.models, f"resnet{depth}")().eval()  # random init: no download
    with torch.no_grad():  # BatchNorm statistics that are not the identity
        for m in theirs.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    options = dict(arch="imagenet", depth=depth, num_classes=1000, stride_in_3x3=depth >= 50)
    ours = load_torchvision_state_dict(horesnet.build_model(**options), theirs.state_dict()).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)
    back = to_torchvision_state_dict(ours)
    assert back.keys() == theirs.state_dict().keys()
    assert all(torch.equal(back[k], v) for k, v in theirs.state_dict().items())
    fresh = getattr(torchvision.models, f"resnet{depth}")()
    fresh.load_state_dict(back, strict=True)
    # the same weights through timm: pretrained=True from a local torchvision file
    path = tmp_path / f"resnet{depth}.pth"
    torch.save(theirs.state_dict(), path)
    model = timm.create_model(f"horesnet_euler_resnet{depth}", pretrained=True, stride_in_3x3=depth >= 50,
                              pretrained_cfg_overlay=dict(file=str(path))).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), theirs(x), rtol=1e-5, atol=1e-5)
