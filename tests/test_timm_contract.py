"""timm's model contract on every registered block (docs/model_api.md), checked the way timm's own model tests
check it: a client script that knows nothing of horesnet beyond ``build_model`` runs unchanged on every block.

References are independent of the code under test: channels and reductions by hand from He et al. 2015's CIFAR
family (16/32/64 channels times ``width``, stride 2 at stages 2 and 3), block outputs captured with forward hooks,
and timm's documented index rule (None: all taps, int n: the last n, a list: those, negative from the end).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import horesnet
from horesnet import ConfigError

from ._analysis_helpers import smallest_depth

BLOCKS = horesnet.list_blocks()
# width 0.25: stage widths 16/32/64 -> 4/8/16; a 16x16 input; stride 1 stem, stride 2 into stages 2 and 3
CHANNELS, REDUCTIONS, SIDE = [4, 4, 8, 16], [1, 1, 2, 4], 16


def build(block: str, **kw) -> nn.Module:
    # stochastic depth where the block supports it (an ODE block and the multistep stages refuse it by name)
    extra = {"drop_path_rate": 0.1} if block in horesnet.list_schemes("rk") else {}
    return horesnet.build_model(block=block, depth=smallest_depth(block), width=0.25, **extra, **kw)


def client_script(model: nn.Module) -> dict:
    """What a timm user writes: new head, features, checkpointing, weight-decay groups, one training step."""
    model.reset_classifier(5)
    x = torch.randn(2, *model.pretrained_cfg["input_size"][:1], SIDE, SIDE)
    model.eval()
    final, intermediates = model.forward_intermediates(x)
    last_two = model.forward_intermediates(x, indices=2, intermediates_only=True)
    early = model.forward_intermediates(x, indices=[1], stop_early=True, intermediates_only=True)
    model.train()
    model.set_grad_checkpointing(True)
    skip = model.no_weight_decay()
    decay = [p for n, p in model.named_parameters() if n not in skip]
    no_decay = [p for n, p in model.named_parameters() if n in skip]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 1e-4}, {"params": no_decay, "weight_decay": 0.0}],
                          lr=0.1, momentum=0.9)
    before = [p.detach().clone() for p in model.parameters()]
    loss = nn.functional.cross_entropy(model(x), torch.tensor([0, 4]))
    loss.backward()
    opt.step()
    changed = sum(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
    return dict(x=x, final=final, intermediates=intermediates, last_two=last_two, early=early, loss=loss.item(),
                changed=changed, skip=skip)


@pytest.mark.parametrize("block", BLOCKS)
def test_timm_client_script_runs_on_every_block(block):
    torch.manual_seed(0)
    model = build(block)
    out = client_script(model)
    assert model.num_classes == 5 and model.get_classifier().out_features == 5
    assert [t.shape[1] for t in out["intermediates"]] == CHANNELS
    assert [SIDE // t.shape[-1] for t in out["intermediates"]] == REDUCTIONS
    assert [(f["num_chs"], f["reduction"]) for f in model.feature_info] == list(zip(CHANNELS, REDUCTIONS, strict=True))
    for f in model.feature_info:
        model.get_submodule(f["module"])  # every tap names a real module
    assert out["final"].shape == (2, CHANNELS[-1], SIDE // 4, SIDE // 4)
    assert all(torch.equal(a, b) for a, b in zip(out["last_two"], out["intermediates"][-2:], strict=True))
    assert len(out["early"]) == 1 and torch.equal(out["early"][0], out["intermediates"][1])
    assert torch.isfinite(torch.tensor(out["loss"]))
    assert out["changed"] > 0
    # no_weight_decay: exactly the normalisation parameters (every 1-D parameter but the classifier's bias)
    expected = {n for n, p in model.named_parameters() if p.ndim == 1 and not n.startswith("fc.")}
    assert out["skip"] == expected


@pytest.mark.parametrize("block", BLOCKS)
def test_block_level_taps_are_the_stem_and_every_block_output(block):
    model = build(block).eval()
    seen = []
    handles = [model.stem.register_forward_hook(lambda m, i, o: seen.append(o))]
    handles += [b.register_forward_hook(lambda m, i, o: seen.append(o)) for stage in model.stages for b in stage]
    x = torch.randn(2, 3, SIDE, SIDE)
    with torch.no_grad():
        final, taps = model.forward_intermediates(x, level="block")
        reference = model.forward_features(x)
    for h in handles:
        h.remove()
    n_blocks = sum(len(stage) for stage in model.stages)
    assert len(taps) == 1 + n_blocks
    assert all(torch.equal(a, b) for a, b in zip(taps, seen[:len(taps)], strict=True))
    assert torch.allclose(final, reference)


@pytest.mark.parametrize("block", ["euler", "rk4", "ode"])
def test_reset_classifier_zero_pre_logits_and_prune(block):
    model = build(block).eval()
    x = torch.randn(2, 3, SIDE, SIDE)
    with torch.no_grad():
        taps = model.forward_intermediates(x, intermediates_only=True)
        model.reset_classifier(0)
        assert model(x).shape == (2, CHANNELS[-1])  # no head: pooled features, as timm
        assert isinstance(model.get_classifier(), nn.Identity)
        assert model.forward_head(model.forward_features(x), pre_logits=True).shape == (2, CHANNELS[-1])
        assert model.prune_intermediate_layers(indices=[1]) == [1]
        kept = model.forward_intermediates(x, indices=[1], intermediates_only=True)
    assert torch.equal(kept[0], taps[1])
    assert all(len(stage) == 0 for stage in model.stages[1:])


def test_pretrained_cfg_names_real_modules():
    for arch, depth, side, mean in (("cifar", 8, 32, 0.4914), ("imagenet", 18, 224, 0.485)):
        model = horesnet.build_model(arch=arch, depth=depth, width=0.25)
        cfg = model.pretrained_cfg
        conv = model.get_submodule(cfg["first_conv"])
        assert isinstance(conv, nn.Conv2d) and conv.in_channels == cfg["input_size"][0] == 3
        assert model.get_submodule(cfg["classifier"]) is model.get_classifier()
        assert cfg["input_size"][1:] == (side, side) and cfg["mean"][0] == mean and len(cfg["std"]) == 3
        assert cfg["num_classes"] == model.num_classes == 10


def test_zero_init_last_starts_every_same_shape_block_as_its_shortcut():
    model = horesnet.build_model(block="rk4", depth=smallest_depth("rk4"), width=0.25, zero_init_last=True).eval()
    with torch.no_grad():
        taps = model.forward_intermediates(torch.randn(2, 3, SIDE, SIDE), level="block", intermediates_only=True)
    same = [(a, b) for a, b in zip(taps, taps[1:], strict=False) if a.shape == b.shape]
    assert len(same) >= 3 and all(torch.equal(a, b) for a, b in same)  # ReLU(x + 0) = x for x >= 0


@pytest.mark.parametrize("indices", [0, 5, [4], [-5], []])
def test_bad_indices_are_config_errors(indices):
    model = build("euler")
    with pytest.raises(ConfigError, match="indices|index|taps"):
        model.forward_intermediates(torch.randn(1, 3, SIDE, SIDE), indices=indices)


def test_bad_level_and_num_classes_are_config_errors():
    model = build("euler")
    with pytest.raises(ConfigError, match="'unit'.*stage, block"):
        model.forward_intermediates(torch.randn(1, 3, SIDE, SIDE), level="unit")
    with pytest.raises(ConfigError, match="-1"):
        model.reset_classifier(-1)


@pytest.mark.parametrize("arch,depth,side", [("cifar", 20, SIDE), ("imagenet", 18, 64)])
def test_headless_and_unpooled_networks_at_construction(arch, depth, side):
    """timm's clients build ``num_classes=0`` / ``global_pool=''``; the features equal a headed network's."""
    torch.manual_seed(0)
    headed = horesnet.build_model(arch=arch, depth=depth, width=0.25).eval()
    x = torch.randn(2, 3, side, side)
    for num_classes, pool in ((0, "avg"), (0, "")):
        model = horesnet.build_model(arch=arch, depth=depth, width=0.25, num_classes=num_classes, global_pool=pool)
        missing, unexpected = model.load_state_dict(headed.state_dict(), strict=False)
        assert not missing and set(unexpected) <= {"fc.weight", "fc.bias"}
        assert (model.num_classes, model.global_pool) == (num_classes, pool)
        assert ("fc.weight" in model.state_dict()) == (num_classes > 0)
        with torch.no_grad():
            features = headed.forward_features(x)
            got = model.eval()(x)
        torch.testing.assert_close(got, features.mean((2, 3)) if pool else features)
    with pytest.raises(ConfigError, match="'max'.*'avg', ''"):
        horesnet.build_model(depth=20, global_pool="max")
    with pytest.raises(ConfigError, match="needs num_classes=0"):  # a linear head needs pooled features (timm)
        horesnet.build_model(depth=20, global_pool="")
    with pytest.raises(ConfigError, match="needs num_classes=0"):
        model.reset_classifier(5)  # the model above has global_pool=''


def test_pretrained_cfg_can_be_set_as_timm_builder_does():
    model = build("euler")
    own = model.pretrained_cfg
    model.pretrained_cfg = dict(own, mean=(0.5, 0.5, 0.5), architecture="horesnet_euler_resnet20")
    model.default_cfg = model.pretrained_cfg
    assert model.pretrained_cfg["mean"] == (0.5, 0.5, 0.5) and model.default_cfg == model.pretrained_cfg
    model.pretrained_cfg = None  # back to the configuration computed from the network
    assert model.pretrained_cfg == own and model.in_chans == 3
