"""A researcher's own residual function, registered from this file alone (docs/extending.md, "Units").

This module is itself the plugin: at import it registers ``se_basic`` -- a basic unit followed by a
squeeze-and-excitation gate (Hu et al. 2018, Fig. 2) -- with one ``register_unit`` call. The tests then build it
under every registered scheme, and train it end to end through the command line
(``python -m horesnet.fit plugins=[this file] unit=se_basic block=rk4``), with no edit anywhere else. Expected
parameter counts are summed by hand from the layer shapes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from horesnet import build_model, get_scheme, list_schemes
from horesnet.nn import get_unit, list_units, register_unit

if __package__:  # pytest (tests.test_extension_unit); as a plugin file, only the registrations run
    from ._analysis_helpers import randomise_norms
    from ._cli_helpers import cli_env, run_cli
    from ._training_helpers import CLI_TINY


REDUCTION = 4


class SEBasic(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, then x * sigmoid(W2 relu(W1 avgpool(x))) per channel."""

    def __init__(self, in_channels, out_channels, stride, options):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = options.norm_layer(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = options.norm_layer(out_channels)
        hidden = max(1, out_channels // REDUCTION)
        self.squeeze = nn.Conv2d(out_channels, hidden, 1)
        self.excite = nn.Conv2d(hidden, out_channels, 1)

    def forward(self, x):
        x = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        gate = torch.sigmoid(self.excite(torch.relu(self.squeeze(x.mean((2, 3), keepdim=True)))))
        return x * gate


if "se_basic" not in list_units():  # pytest imports this file once, the command line once more in its process
    register_unit("se_basic", SEBasic, convs=2, description="basic unit with a squeeze-and-excitation gate")


def se_unit_params(cin: int, c: int) -> int:
    hidden = max(1, c // REDUCTION)
    return 9 * cin * c + 2 * c + 9 * c * c + 2 * c + (c * hidden + hidden) + (hidden * c + c)


def network_params(units_per_stage: int, widths=(4, 8, 16), in_channels=3, classes=10) -> int:
    """Stem conv + BN, the units (shortcut A has no weights), the fc layer."""
    total = 9 * in_channels * widths[0] + 2 * widths[0]
    cin = widths[0]
    for c in widths:
        total += se_unit_params(cin, c) + (units_per_stage - 1) * se_unit_params(c, c)
        cin = c
    return total + widths[-1] * classes + classes


def test_the_unit_is_registered_and_counted_for_depth():
    unit = get_unit("se_basic")
    assert unit.convs == 2 and unit.expansion == 1
    model = build_model(block="rk4", unit="se_basic", depth=32, width=0.25)
    assert model.layout.units_per_stage == (5, 5, 5)  # (32 - 2) / (3 * 2 convs)
    assert sum(p.numel() for p in model.parameters()) == network_params(5)
    assert sum(isinstance(u, SEBasic) for _, u, _ in model.units()) == 15


@pytest.mark.parametrize("scheme", list_schemes("rk"))
def test_every_scheme_runs_the_user_unit(scheme):
    per_stage = get_scheme(scheme).increments + 1  # an Euler entry unit + one block of the scheme
    model = build_model(block=scheme, unit="se_basic", depth=6 * per_stage + 2, width=0.25)
    x = torch.randn(2, 3, 8, 8)
    out = model(x)
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    out.square().sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    gates = [m.excite.weight.grad for m in model.modules() if isinstance(m, SEBasic)]
    assert gates and any(g.abs().sum() > 0 for g in gates)  # a gate with one dead ReLU unit may get none


def test_fit_trains_the_user_unit_through_the_command_line(tmp_path):
    args = [f"plugins=[{Path(__file__).resolve()}]", "unit=se_basic", "block=rk4", *CLI_TINY, "depth=32",
            "hydra.run.dir=run"]
    res = run_cli("horesnet.fit", args, tmp_path, cli_env(tmp_path), timeout=300)
    assert res["rc"] == 0, res["stderr"][-2000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "finished"
    assert summary["config"]["unit"] == "se_basic"
    assert summary["model"]["params"] == network_params(5)
    state = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert sum(k.endswith("excite.weight") for k in state) == 15


def test_info_counts_the_user_unit_and_names_it_among_the_valid_units(capsys):
    from horesnet import info

    assert info.main([f"plugins=[{Path(__file__).resolve()}]", "unit=se_basic", "block=rk4", "depth=32"]) == 0
    assert "conv layers in units: 30 (2 per unit)" in capsys.readouterr().out
    assert info.main(["unit=se_basc"]) == 2
    err = capsys.readouterr().err
    assert "se_basc" in err and "'se_basic'" in err and "'bottleneck'" in err


def test_a_registered_placement_builds_the_forward_written_out_by_hand():
    from horesnet.nn import Placement, list_placements, register_placement

    if "test_preact_post_relu" not in list_placements():
        register_placement(Placement("test_preact_post_relu", conv=("norm", "relu", "conv"),
                                     last=("norm", "relu", "conv"), post=("relu",), stem=("norm", "relu"), final=()))
    model = build_model(block="euler", depth=8, width=0.25, placement="test_preact_post_relu").double().eval()
    randomise_norms(model)
    block = model.stages[0][0]  # an identity-shortcut block of stage 1
    unit = block.units[0]
    bn = lambda m, t: (t - m.running_mean[None, :, None, None]) / torch.sqrt(  # noqa: E731
        m.running_var[None, :, None, None] + m.eps) * m.weight[None, :, None, None] + m.bias[None, :, None, None]
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        f = unit.convs[1](torch.relu(bn(unit.norms[1], unit.convs[0](torch.relu(bn(unit.norms[0], x))))))
        assert (block(x.clone()) - torch.relu(x + f)).abs().max() < 1e-12
        stem = model.stem
        assert [type(m).__name__ for m in stem] == ["Conv2d", "BatchNorm2d", "ReLU"]
        assert isinstance(model.final, nn.Identity)
