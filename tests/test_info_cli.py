"""Tests of ``python -m horesnet.info``: the model summary, the scheme list and its error messages.

A few commands run as real subprocesses (all started at once, so their interpreter start-ups overlap); the
rest call ``horesnet.info.main`` in-process. Expected numbers come from He et al. 2015 (ResNet-56 has
853,018 parameters) and the orders the scheme names promise (Butcher 2016; Verner 1978).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import horesnet
from horesnet import list_schemes
from horesnet.info import main

from ._analysis_helpers import PROMISED

# Interpreter start-up (torch, Hydra) costs seconds per process, so only a few commands run as subprocesses;
# the in-process tests below cover every bad value (main() must return an error code, never raise).
SUBPROCESS_RUNS = {
    "rk4_56": ["block=rk4", "depth=56"],
    "bad_block": ["block=foo"],
    "bad_key": ["foo=1"],
    "rk8_56": ["block=rk8", "depth=56"],
}


@pytest.fixture(scope="module")
def cli_runs():
    """Run every subprocess command concurrently; {name: CompletedProcess-like (returncode, stdout, stderr)}."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    procs = {name: subprocess.Popen([sys.executable, "-m", "horesnet.info", *args], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, env=env)
             for name, args in SUBPROCESS_RUNS.items()}
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        results[name] = (proc.returncode, out, err)
    return results


def test_cli_model_summary(cli_runs):
    rc, out, err = cli_runs["rk4_56"]
    assert rc == 0, err
    assert "853,018" in out  # He et al. 2015: ResNet-56 has 0.85M parameters; equal depth keeps them
    assert "euler* + rk4 x2" in out
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "name, must_contain",
    [("bad_block", ["foo", "rk4"]), ("bad_key", ["foo", "depth"]), ("rk8_56", ["rk8", "92"])],
)
def test_cli_bad_values_fail_cleanly(cli_runs, name, must_contain):
    rc, out, err = cli_runs[name]
    assert rc == 2, err  # bad input: exit status 2 (tests/test_bad_input_matrix.py)
    assert "Traceback" not in err and "Traceback" not in out
    for text in must_contain:
        assert text in err, err
    assert len(err.strip().splitlines()) <= 3, err  # one short paragraph, not a dump


# ------------------------------------------------------------------------------------------ in-process
def run_main(capsys, *args):
    rc = main(list(args))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def scheme_rows(text: str) -> dict[str, list[str]]:
    rows = {}
    for line in text.splitlines():
        cells = line.split()
        if cells and cells[0] in list_schemes():
            rows[cells[0]] = cells
    return rows


def test_list_schemes_shows_every_scheme_with_its_promised_order(capsys):
    rc, out, err = run_main(capsys, "list=schemes")
    assert rc == 0 and not err
    header = out.splitlines()[0].split()
    assert header[:3] == ["scheme", "increments", "order"]
    rows = scheme_rows(out)
    assert set(rows) == set(list_schemes())
    for name, (stages, order) in PROMISED.items():
        assert rows[name][1:3] == [str(stages), str(order)], rows[name]
    assert rows["rk8"][2] == "8"


def test_list_blocks_includes_ode(capsys):
    rc, out, _ = run_main(capsys, "list=blocks")
    assert rc == 0
    assert out.split() == list_schemes() + ["ode"]


def test_list_units_placements_and_studies_show_the_paper_facts(capsys):
    rc, out, _ = run_main(capsys, "list=units")
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert rc == 0 and rows["basic"][1:3] == ["2", "1"] and rows["bottleneck"][1:3] == ["3", "4"]  # He 2015, Fig. 5
    rc, out, _ = run_main(capsys, "list=placements")
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert rc == 0 and {"original", "bn_after_add", "relu_before_add", "relu_only_preact", "full_preact"} <= set(rows)
    assert rows["original"][1:4] == ["conv-norm-relu", "conv-norm", "relu"]  # He et al. 2016, Fig. 4(a)
    assert rows["full_preact"][1:4] == ["norm-relu-conv", "norm-relu-conv", "-"]  # Fig. 4(e)
    rc, out, _ = run_main(capsys, "list=studies")
    names = {line.split()[0] for line in out.splitlines()[1:]}
    assert rc == 0 and {"lesion", "lesion_random", "reorder", "paths", "effective", "responses", "refinement",
                        "robustness"} <= names


def test_in_process_summary_with_leftovers(capsys):
    rc, out, err = run_main(capsys, "block=rk4", "depth=62", "width=0.25", "image_size=8")
    assert rc == 0, err
    assert "euler* + rk4 x2 + euler'" in out
    assert "leftover units: 3" in out


def test_in_process_imagenet_summary(capsys):
    rc, out, err = run_main(capsys, "arch=imagenet", "depth=18", "shortcut=B", "num_classes=1000",
                            "image_size=64")
    assert rc == 0, err
    assert "11,689,512" in out  # torchvision resnet18


BAD_CLI = [
    (["block=foo"], ["foo", "euler"]),
    (["depth=57"], ["57", "56"]),
    (["foo=1"], ["foo", "depth"]),
    (["block=rk8", "depth=56"], ["rk8", "92"]),
    (["list=foo"], ["foo", "schemes"]),
    (["unit=foo"], ["foo", "basic"]),
    (["shortcut=plain", "block=rk4"], ["plain", "euler"]),
    (["block=rk4", "depth=62", "strict=true"], ["62", "56"]),
    (["width=-1"], ["-1"]),
    (["stages=[a,9,9]"], ["a"]),
    (["image_size=-3"], ["-3"]),
    (["+foo=1"], ["foo"]),  # Hydra's append syntax must not smuggle in an unknown option either
]


@pytest.mark.parametrize("args, must_contain", BAD_CLI, ids=[" ".join(args) for args, _ in BAD_CLI])
def test_in_process_bad_values_return_an_error_code(capsys, args, must_contain):
    rc, out, err = run_main(capsys, *args)  # must return, not raise
    assert rc == 2, err
    assert "Traceback" not in err
    for text in must_contain:
        assert text in err, err


def test_registered_scheme_is_listed_and_buildable(capsys, scheme_registry_guard):
    # SSPRK3 (Shu & Osher 1988), third order
    horesnet.register_scheme("my_ssprk3", [[0, 0, 0], [1, 0, 0], [0.25, 0.25, 0]], [1 / 6, 1 / 6, 2 / 3])
    rc, out, _ = run_main(capsys, "list=schemes")
    assert rc == 0
    assert scheme_rows(out)["my_ssprk3"][1:3] == ["3", "3"]
    rc, out, err = run_main(capsys, "block=my_ssprk3", "depth=26", "width=0.25", "image_size=8")
    assert rc == 0, err
    assert "euler* + my_ssprk3" in out
