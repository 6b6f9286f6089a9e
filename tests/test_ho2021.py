"""The HO-ResNet authors' network (docs/ho2021.md): their unit as the placement ``preact_relu_after_add`` and their
RK8 coefficients as the flagged compatibility scheme ``ho2021_rk8_published``.

References typed here independently of the package: the four entries of the authors' code and Verner's exact
formulas for them (Verner 1978), and the tableau read out numerically from the authors' block
(``data/ho2021_rk8_published_probe.json``). The unit is written out by hand (BN-ReLU-conv-BN-ReLU-conv, add, ReLU).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from fractions import Fraction
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from horesnet import build_model, get_scheme, register_scheme
from horesnet.info import main as info_main
from horesnet.schemes import SchemeError, list_schemes
from horesnet.schemes.registry import unregister_scheme

from ._analysis_helpers import randomise_norms, rk_step_by_hand

NAME = "ho2021_rk8_published"
S6 = math.sqrt(6)
PROBE = json.loads((Path(__file__).parent / "data" / "ho2021_rk8_published_probe.json").read_text())
# 1-based entry -> (the authors' value, Verner's exact value)
WRONG_A = {(6, 1): (0.053333333333, (9 - S6) / 150),
           (12, 7): (847.8814814814815, (154922 - 40458 * S6) / 135),
           (12, 10): (605.7315968367965, (26304 - 15176 * S6) / 45)}
WRONG_B = {8: (27 / 140, -27 / 140)}


def bn(m, t):
    """Eval-mode BatchNorm written out."""
    shape = (1, -1, 1, 1)
    return ((t - m.running_mean.view(shape)) / torch.sqrt(m.running_var.view(shape) + m.eps) * m.weight.view(shape)
            + m.bias.view(shape))


def unit_by_hand(unit, z):
    """BN-ReLU-conv-BN-ReLU-conv with the unit's own weights (the first BN on the unit's input channels)."""
    return unit.convs[1](torch.relu(bn(unit.norms[1], unit.convs[0](torch.relu(bn(unit.norms[0], z))))))


def option_a_by_hand(x, out_channels):
    """Stride-2 subsampling, then zero channels after the input's (horesnet's option A)."""
    sub = x[:, :, ::2, ::2]
    return torch.cat([sub, sub.new_zeros(sub.shape[0], out_channels - sub.shape[1], *sub.shape[2:])], 1)


def hand_model(**kw):
    model = build_model(width=0.25, placement="preact_relu_after_add", **kw).double().eval()
    randomise_norms(model)
    return model


def quiet_build(**kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return build_model(**kw)


# ------------------------------------------------------------------------------------------- the authors' unit
def test_authors_unit_block_by_hand_identity_and_entry_block():
    model = hand_model(block="euler", depth=8)  # one unit per stage: every block is an entry block but s1.b1
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        block = model.stages[0][0]          # identity shortcut
        assert (block(x.clone()) - torch.relu(x + unit_by_hand(block.units[0], x))).abs().max() < 1e-12
        block = model.stages[1][0]          # 4 -> 8 channels, stride 2, option A
        expected = torch.relu(option_a_by_hand(x, 8) + unit_by_hand(block.units[0], x))
        assert (block(x.clone()) - expected).abs().max() < 1e-12
        assert [type(m).__name__ for m in model.stem] == ["Conv2d", "BatchNorm2d", "ReLU"]  # stem conv-BN-ReLU
        assert type(model.final).__name__ == "Identity"                                    # nothing before pooling


def test_authors_rk8_block_by_hand_from_the_probed_tableau():
    """A whole block of the authors' network (their unit, their coefficients, stride in the first unit) against the
    RK8 step written out by hand from the tableau read out of their code."""
    A = [row + [0.0] * (14 - len(row)) for row in PROBE["A"]]
    with pytest.warns(UserWarning):
        model = hand_model(block=NAME, depth=None, stages=[14, 14, 14], entry="scheme", stem_stride=2)
    x = torch.randn(2, 4, 4, 4, dtype=torch.float64)
    with torch.no_grad():
        block = model.stages[1][0]          # 4 -> 8 channels, stride 2: S(x) is option A
        assert block.scheme.name == NAME
        units = [lambda z, u=u: unit_by_hand(u, z) for u in block.units]
        expected = torch.relu(rk_step_by_hand(A, PROBE["b"], units, x, 1.0, sx=option_a_by_hand(x, 8)))
        got = block(x.clone())
        assert ((got - expected).abs().max() / expected.abs().max()) < 1e-9


def test_placement_is_listed(capsys):
    assert info_main(["list=placements"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["preact_relu_after_add"][1:4] == ["norm-relu-conv", "norm-relu-conv", "relu"]


# ------------------------------------------------------------------------------------------- the tableau
def test_the_four_entries_differ_from_rk8_exactly_where_and_by_what_the_authors_typed():
    pub, rk8 = get_scheme(NAME), get_scheme("rk8")
    for (i, j), (authors, verner) in WRONG_A.items():
        assert pub.A[i - 1][j - 1] == authors
        assert rk8.A[i - 1][j - 1] == pytest.approx(verner, rel=1e-14)
    for i, (authors, verner) in WRONG_B.items():
        assert pub.b[i - 1] == authors == float(Fraction(27, 140))
        assert rk8.b[i - 1] == verner
    for i in range(14):
        for j in range(14):
            if (i + 1, j + 1) not in WRONG_A:
                assert pub.A[i][j] == rk8.A[i][j], (i + 1, j + 1)
        if i + 1 not in WRONG_B:
            assert pub.b[i] == rk8.b[i], i + 1


def test_consequences_inconsistent_order_zero_and_the_far_node():
    pub = get_scheme(NAME)
    assert math.fsum(pub.b) == pytest.approx(1.3857142857, abs=1e-9)   # 1 + 2 * 27/140
    assert pub.order == 0 and not pub.consistent
    # c[12] = Verner's 4/3 plus what the two wrong entries of row 12 add
    shift = sum(authors - verner for (i, _), (authors, verner) in WRONG_A.items() if i == 12)
    assert pub.c[11] == pytest.approx(4 / 3 + shift, rel=1e-12) and 1283.0 < pub.c[11] < 1283.01
    assert get_scheme("rk8").order == 8 and get_scheme("rk8").warning == ""
    assert pub.promised_order is None and "not a valid Runge-Kutta method" in pub.warning


def test_registered_tableau_matches_the_table_probed_from_the_authors_block():
    pub = get_scheme(NAME)
    assert len(PROBE["A"]) == len(PROBE["b"]) == pub.increments == 14
    for i, row in enumerate(PROBE["A"]):
        assert len(row) == i
        full = row + [0.0] * (14 - i)
        for j, probed in enumerate(full):
            assert (pub.A[i][j] == 0) == (probed == 0), (i + 1, j + 1)
            assert abs(pub.A[i][j] - probed) <= 1e-9 * max(1.0, abs(probed)), (i + 1, j + 1)
    for i, probed in enumerate(PROBE["b"]):
        assert abs(pub.b[i] - probed) <= 1e-9 * max(1.0, abs(probed)), i + 1


def test_compatibility_scheme_cannot_be_replaced_or_removed():
    with pytest.raises(SchemeError, match="built in"):
        register_scheme(NAME, [[0]], [1], overwrite=True)
    with pytest.raises(SchemeError, match="built in"):
        unregister_scheme(NAME)
    assert NAME in list_schemes()


def test_info_list_schemes_marks_it(capsys):
    assert info_main(["list=schemes"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.split()[:1] == [NAME])
    assert row.split()[1:4] == ["14", "0", "1.38571"]
    assert "!! INCONSISTENT" in row and "FLAGGED" in row
    note = next(line for line in out.splitlines() if line.startswith(f"!! {NAME}:"))
    assert "not a valid Runge-Kutta method" in note and "docs/ho2021.md" in note
    rk8_row = next(line for line in out.splitlines() if line.split()[:1] == ["rk8"])
    assert "!!" not in rk8_row


# ------------------------------------------------------------------------------------------- the warning
@pytest.mark.parametrize("kw", [dict(block=NAME, depth=None, stages=[15, 1, 1]),
                                dict(block="euler", depth=8, inner=NAME)])
def test_building_it_warns(kw):
    with pytest.warns(UserWarning) as record:
        build_model(width=0.25, **kw)
    texts = [str(w.message) for w in record if NAME in str(w.message)]
    assert len(texts) == 1
    assert "not a valid Runge-Kutta method" in texts[0] and "computed order 0" in texts[0]
    assert "docs/ho2021.md" in texts[0]


def test_a_sound_scheme_does_not_warn_and_the_flag_is_data(scheme_registry_guard):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_model(block="rk8", depth=None, stages=[15, 1, 1], width=0.25)
    register_scheme("flagged_midpoint", [[0, 0], [0.5, 0]], [0, 1], warning="a test flag.")
    with pytest.warns(UserWarning, match="a test flag"):
        build_model(block="flagged_midpoint", depth=20, width=0.25)


def test_the_cli_prints_the_warning_on_stderr():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run([sys.executable, "-m", "horesnet.info", f"block={NAME}", "depth=null", "stages=[15,1,1]",
                           "width=0.25", "image_size=8"], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "UserWarning" in proc.stderr and "not a valid Runge-Kutta method" in proc.stderr
    assert "computed order 0" in proc.stdout


# ------------------------------------------------------------------------------------------- training
def test_the_authors_network_trains_one_step_with_finite_values():
    torch.manual_seed(0)
    model = quiet_build(block=NAME, depth=None, stages=[14, 1, 1], entry="scheme", stem_stride=2,
                        placement="preact_relu_after_add", width=0.25).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
    loss = F.cross_entropy(model(x), y)
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    before = [p.detach().clone() for p in model.parameters()]
    opt.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))
    assert torch.isfinite(F.cross_entropy(model(x), y))
