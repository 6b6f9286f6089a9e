"""The full-scale paper recipes (``horesnet/configs/experiment/``): each composes, builds the paper's network and
carries the paper's schedule and published number.

References are the papers, typed here independently of the configs: He et al. 2015 (arXiv 1512.03385) Sec. 4.2
and Table 6, He et al. 2016 (arXiv 1603.05027) CIFAR-10 results, Luo et al. 2021 (arXiv 2103.15244) abstract.
"""

from __future__ import annotations

import math
import warnings
from importlib.resources import files

import pytest

from horesnet.cli.compose import compose
from horesnet.errors import ConfigError
from horesnet.models.complexity import count_params
from horesnet.training.config import model_from_config
from horesnet.training.run import report

from ._training_helpers import TINY, fit

EXPERIMENTS = sorted(p.name[:-5] for p in files("horesnet.configs").joinpath("experiment").iterdir()
                     if p.name.endswith(".yaml"))

# He et al. 2015, Table 6: parameters (option A, 10 classes) and test error (%).
HE2015 = {20: (269_722, 8.75), 32: (464_154, 7.51), 44: (658_586, 7.17), 56: (853_018, 6.97),
          110: (1_727_962, 6.43)}
HE2016_PREACT = {110: 6.37, 164: 5.46}
HO2021_GAIN = {30: 2.15, 58: 2.35}
# The HO-ResNet authors' RK8 network, counted by hand: stem conv 3*16*9 + BN 2*16; per stage of width w (input width
# w_in) 14 units of two 3x3 convs and two BNs, the first BN on the unit's input channels; fc 64*10 + 10.
HO2021_RK8_PARAMS = (3 * 16 * 9 + 2 * 16
                     + sum(9 * w_in * w + 9 * w * w + 2 * w_in + 2 * w + 13 * (2 * 9 * w * w + 4 * w)
                           for w_in, w in ((16, 16), (16, 32), (32, 64)))
                     + 64 * 10 + 10)
ITERATIONS, MILESTONES = 64_000, (32_000, 48_000)   # He et al. 2015 Sec. 4.2
TRAIN_IMAGES, BATCH = 45_000, 128


def _cfg(name: str, *extra: str):
    return compose("fit", [f"experiment={name}", "trainer=cpu", *extra])


def test_every_expected_experiment_exists():
    expected = ({f"he2015_resnet{d}" for d in HE2015} | {f"he2015_plain{d}" for d in (20, 32, 44, 56)}
                | {f"he2016_preact_resnet{d}" for d in HE2016_PREACT} | {f"ho2021_resnet{d}" for d in HO2021_GAIN}
                | {"ho2021_published_rk8"})
    assert expected <= set(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_recipe_is_he2015_cifar10_schedule(name):
    cfg = _cfg(name)
    assert cfg.data.name == "cifar10" and cfg.data.val_size == 5000 and cfg.data.batch_size == BATCH
    assert cfg.data.augment and cfg.data.crop_padding == 4 and cfg.data.flip
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.momentum, cfg.optim.weight_decay) == ("sgd", 0.1, 0.9, 1e-4)
    steps_per_epoch = math.ceil((TRAIN_IMAGES) / BATCH)
    total = cfg.trainer.max_epochs * steps_per_epoch
    assert abs(total - ITERATIONS) / ITERATIONS < 0.005, total
    assert [round(m * total, -3) for m in cfg.optim.milestones] == list(MILESTONES)
    assert cfg.optim.gamma == 0.1
    assert _cfg(name).trainer.accelerator == "cpu" and compose("fit", [f"experiment={name}"]).trainer.accelerator \
        == "gpu"


@pytest.mark.parametrize("depth", sorted(HE2015))
def test_he2015_resnets_match_table6(depth):
    params, error = HE2015[depth]
    cfg = _cfg(f"he2015_resnet{depth}")
    assert count_params(model_from_config(cfg)) == params
    assert cfg.paper.test_error == error
    assert cfg.optim.warmup_steps == (400 if depth == 110 else 0)


@pytest.mark.parametrize("depth", (20, 32, 44, 56))
def test_he2015_plain_nets_have_no_shortcuts_and_the_resnet_parameters(depth):
    cfg = _cfg(f"he2015_plain{depth}")
    model = model_from_config(cfg)
    assert cfg.shortcut == "plain"
    assert count_params(model) == HE2015[depth][0]   # option A shortcuts hold no parameters


@pytest.mark.parametrize("depth", sorted(HE2016_PREACT))
def test_he2016_preact(depth):
    cfg = _cfg(f"he2016_preact_resnet{depth}")
    assert cfg.placement == "full_preact" and cfg.optim.warmup_steps == 400 and cfg.optim.warmup_lr == 0.01
    assert cfg.paper.test_error == HE2016_PREACT[depth]
    model = model_from_config(cfg)
    units = list(model.units())
    per_unit = 3 if depth == 164 else 2
    assert per_unit * len(units) + 2 == depth
    assert 1.65e6 < count_params(model) < 1.75e6    # "1.7M" in both papers


@pytest.mark.parametrize("depth", sorted(HO2021_GAIN))
def test_ho2021_layouts_are_equal_parameter_across_schemes(depth):
    counts = {}
    for block in ("euler", "midpoint", "rk4"):
        cfg = _cfg(f"ho2021_resnet{depth}", f"block={block}")
        model = model_from_config(cfg)
        assert 2 * len(list(model.units())) + 2 == depth       # 2E+2 weighted layers
        counts[block] = count_params(model)
        assert cfg.name == f"{block}-d{depth}"
    assert len(set(counts.values())) == 1, counts
    assert _cfg(f"ho2021_resnet{depth}").paper.accuracy_gain_over_euler == HO2021_GAIN[depth]
    assert cfg.placement == "preact_relu_after_add"   # the HO-ResNet authors' unit


@pytest.mark.parametrize("block", ["ho2021_rk8_published", "rk8"])
def test_ho2021_published_rk8_is_the_authors_network_and_its_corrected_twin(block):
    """The authors' exact network (their unit, stride-2 stem, one 14-unit RK8 block per stage, their coefficients)
    and, with block=rk8, the same network with Verner's tableau: equal parameters, only the published one warns."""
    cfg = _cfg("ho2021_published_rk8", *([] if block == "ho2021_rk8_published" else [f"block={block}"]))
    assert (cfg.block, cfg.placement, cfg.stem_stride, cfg.entry, cfg.shortcut) == (
        block, "preact_relu_after_add", 2, "scheme", "A")
    assert list(cfg.stages) == [14, 14, 14] and cfg.name == f"{block}-d86"
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model = model_from_config(cfg)
    flagged = [w for w in record if "not a valid Runge-Kutta method" in str(w.message)]
    assert len(flagged) == (1 if block == "ho2021_rk8_published" else 0)
    assert 2 * len(list(model.units())) + 2 == 86
    assert [len(stage) for stage in model.stages] == [1, 1, 1]   # one RK8 block per stage, nothing else
    assert count_params(model) == HO2021_RK8_PARAMS == 1_339_002


def test_experiment_runs_and_reports_the_paper_number(tmp_path):
    """A tiny real run of an experiment config: the report puts the paper's number beside the measured one."""
    summary = fit(tmp_path, ["experiment=he2015_resnet20", "trainer=cpu", "trainer.precision=32-true",
                             "channels_last=false", "trainer.max_epochs=1", "data.limit_train=64", *TINY])
    assert summary["config"]["paper"]["test_error"] == 8.75
    text = report(summary)
    measured = 100 * (1 - summary["test"]["test/acc1"])
    assert "paper test error 8.75%" in text and f"this run {measured:.2f}%" in text


def test_unknown_experiment_is_refused_not_ignored():
    """``experiment`` is an optional group: Hydra alone would silently run the default recipe on a typo."""
    with pytest.raises(ConfigError) as info:
        compose("fit", ["experiment=he2015_resnet57"])
    assert "he2015_resnet57" in str(info.value) and "he2015_resnet56" in str(info.value)
