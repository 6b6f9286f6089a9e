"""benchmarks/momentumnet_fidelity.py, one cell: horesnet's reversible stage against the independent plain loop
v <- γ v + (1 − γ) f(x), x <- x + v, float64 (momentumnet 0.10 installed: the benchmark builds both libraries)."""

import pytest
import torch

pytest.importorskip("momentumnet")

from benchmarks.momentumnet_fidelity import cell  # noqa: E402


def test_horesnet_reversible_matches_the_plain_loop_in_float64():
    row = cell(0.9, 50, torch.float64, refused=True)
    assert row["horesnet_reversible_vs_loop"] <= 1e-10
    assert row["horesnet_reversible_vs_autograd"] <= 1e-10
    assert row["num_batches_tracked"]["horesnet_reversible"] == [1]
    assert row["momentumnet_backprop_vs_loop"] <= 1e-10  # the same network in both libraries
    assert row["momentumnet_gamma_effective"] == 58983 / 65536
