"""The analysis studies on networks of multistep blocks (horesnet/analysis, docs/multistep.md): lesions of units and
of whole multistep blocks, path polynomials through the carried history, and the studies that skip with a reason.

References: a stage of scalar-linear units F(x) = c·x turns x_0 into (Σ_m P_m c^m)·x_0, P the weighted path
polynomial (every path contributes the product of its coefficients and one c per unit on it); small unweighted
polynomials worked out by hand; a stage with every unit deleted keeps Σα = 1 and passes a constant on.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from horesnet import build_model, get_scheme, list_schemes
from horesnet.analysis import get_study
from horesnet.analysis.lesion import lesion_single, lesion_targets, switched_off
from horesnet.analysis.paths import multistep_polynomial, path_lengths
from horesnet.nn import SwitchOff, hooked
from horesnet.nn.multistep import MultistepBlock

DT = torch.float64


class Scale(nn.Module):
    def __init__(self, c: float):
        super().__init__()
        self.c = c

    def forward(self, x):
        return self.c * x


@pytest.mark.parametrize("scheme", list_schemes("multistep"))
@pytest.mark.parametrize("units", [1, 2, 5])
def test_weighted_path_polynomial_is_the_stage_of_scalar_linear_units(scheme, units):
    c = 0.37
    blk = MultistepBlock(get_scheme(scheme), [Scale(c) for _ in range(units)], step=0.8).double()
    if scheme == "average" and units > 1:
        with torch.no_grad():
            blk.coefficients.alpha.uniform_(-0.4, 0.4)
    poly = multistep_polynomial(blk, weighted=True)
    with torch.no_grad():
        out = blk(torch.ones(1, 1, 1, 1, dtype=DT)).item()
    assert out == pytest.approx(sum(p * c ** m for m, p in enumerate(poly)), rel=1e-12)
    off = {0} if units > 1 else set()
    with hooked({blk: SwitchOff(off)}), torch.no_grad():
        lesioned = blk(torch.ones(1, 1, 1, 1, dtype=DT)).item()
        poly_off = multistep_polynomial(blk, weighted=True)
    assert lesioned == pytest.approx(sum(p * c ** m for m, p in enumerate(poly_off)), rel=1e-12)


def test_unweighted_path_counts_by_hand():
    def stage(scheme, units):
        return MultistepBlock(get_scheme(scheme), [Scale(1.0) for _ in range(units)])

    # momentum, x_(-1) = x_0: P_1 = 1 + z (skip and unit 1); P_2 = P_1 + P_0 + z P_1 = 2 + 2z + z^2
    assert multistep_polynomial(stage("momentum", 2)) == [2, 2, 1]
    # leapfrog: P_1 = 1 + z (Euler starter), P_2 = P_0 + z P_1 = 1 + z + z^2
    assert multistep_polynomial(stage("leapfrog", 2)) == [1, 1, 1]
    # AB2: P_1 = 1 + z, P_2 = P_1 + z P_1 + z P_0 = 1 + 3z + z^2
    assert multistep_polynomial(stage("ab2", 2)) == [1, 3, 1]
    model = build_model(block="momentum", depth=20, width=0.25)  # per stage: Euler entry (1 + z), then [2, 2, 1]
    per_stage = [2, 4, 3, 1]  # (1 + z)(2 + 2z + z^2)
    expected = [1]
    for _ in range(3):
        expected = [sum(expected[i] * per_stage[m - i] for i in range(len(expected)) if 0 <= m - i < 4)
                    for m in range(len(expected) + 3)]
    assert path_lengths(model) == expected


@pytest.mark.parametrize("scheme", ["momentum", "lm"])
def test_lesion_study_on_multistep_networks(scheme):
    torch.manual_seed(0)
    model = build_model(block=scheme, depth=32, width=0.25, placement="full_preact").double().eval()
    x, y = torch.randn(6, 3, 8, 8, dtype=DT), torch.arange(6) % 10
    units = lesion_targets(model, "unit")
    assert [t["address"] for t in units][:5] == ["s1.b1.u1", "s1.b2.u1", "s1.b2.u2", "s1.b2.u3", "s1.b2.u4"]
    blocks = lesion_targets(model, "block")
    assert [(t["address"], t["units"]) for t in blocks] == [("s1.b1", 1), ("s1.b2", 4), ("s2.b1", 1), ("s2.b2", 4),
                                                            ("s3.b1", 1), ("s3.b2", 4)]
    records = lesion_single(model, [(x, y)], "unit")
    assert len(records) == 15 and all(r["scheme"] in ("euler", scheme) for r in records)
    prefix = lesion_single(model, [(x, y)], "block")
    full = lesion_single(model, [(x, y)], "block", reuse_prefix=False)
    assert [r["loss"] for r in prefix] == pytest.approx([r["loss"] for r in full], rel=1e-12)
    # a multistep block with every unit deleted passes a constant stage input on (sum of alpha = 1), here its input
    blk = next(b for a, b, _ in model.blocks() if a == "s2.b2")
    x0 = torch.randn(2, 8, 4, 4, dtype=DT)
    target = next(t for t in blocks if t["address"] == "s2.b2")
    with switched_off(target["switches"]), torch.no_grad():
        torch.testing.assert_close(blk(x0), x0, rtol=1e-12, atol=1e-12)


def test_studies_that_do_not_apply_say_why():
    model = build_model(block="momentum", depth=32, width=0.25)
    effective = get_study("effective")
    reason = effective.skip_reason(model, effective.values({}))
    assert "s1.b2, s2.b2, s3.b2" in reason and "study=paths" in reason
    reorder = get_study("reorder")
    assert "no two non-entry blocks share a stage" in reorder.skip_reason(model, reorder.values({}))
    assert get_study("effective").skip_reason(build_model(block="rk4", depth=32, width=0.25),
                                              effective.values({})) is None
