"""Multistep networks on the command lines and in fair comparisons (docs/multistep.md): a reversible Momentum
ResNet-110 trains a tiny run through ``python -m horesnet.fit``; bad combinations exit 2 before anything is
written; ``info list=schemes`` shows the properties; learned coefficients are logged per epoch; ``compare`` flags
momentum as scale-confounded and names its matched Euler control; ``scale_controls`` trains that control.
"""

from __future__ import annotations

import csv
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from horesnet import build_model
from horesnet.cli.controls import control_sweeps
from horesnet.cli.preflight import preflight
from horesnet.comparison.table import compare
from horesnet.info import main as info_main
from horesnet.models import model_defaults
from horesnet.training.run import model_facts

from ._cli_helpers import cli_env, run_cli
from ._training_helpers import CLI_TINY, TINY, fit

TINY_ARGS = [a for a in CLI_TINY if not a.startswith("depth=")]  # synthetic data, 32 images, one epoch
GOOD = ["block=momentum", "reversible=true", "depth=110", "placement=full_preact", *TINY_ARGS]
BAD = {  # name -> (arguments, words the message must contain)
    "non_invertible": (["block=ab2", "reversible=true", "placement=full_preact"], ["block='ab2'", "cannot be inverted",
                                                                                  "momentum"]),
    "post_activation": (["block=momentum", "reversible=true"], ["placement='original'", "full_preact"]),
    "unsafe_depth": (["block=lm", "reversible=true", "placement=full_preact", "depth=56"],
                     ["depth <= 26", "reversible_unsafe=true"]),
    "inner": (["block=momentum", "inner=rk4"], ["inner=", "multistep"]),
    "tied": (["block=lm", "tied=true"], ["tied=true", "lm"]),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The good run and every bad one, as subprocesses started together."""
    root = tmp_path_factory.mktemp("multistep_cli")
    env = cli_env(root)
    jobs = {"good": ["horesnet.fit", [*GOOD, f"hydra.run.dir={root / 'good'}"]]}
    jobs.update({name: ["horesnet.fit", [*args, *TINY_ARGS, f"hydra.run.dir={root / name}"]]
                 for name, (args, _) in BAD.items()})
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(run_cli, module, args, root, env, 300) for name, (module, args) in jobs.items()}
        return root, {name: f.result() for name, f in futures.items()}


def test_a_reversible_momentum_resnet_110_trains(runs):
    root, results = runs
    r = results["good"]
    assert r["rc"] == 0, r["stderr"][-2000:]
    summary = json.loads((root / "good" / "summary.json").read_text())
    assert summary["config"]["reversible"] is True and summary["model"]["units_per_stage"] == [18, 18, 18]
    weights = [1 - 0.9 ** (18 - s) for s in range(1, 18)]  # 17 momentum units after each Euler entry unit
    assert summary["model"]["residual_scale"]["mean"] == pytest.approx((1 + sum(weights)) / 18, abs=1e-9)
    assert "momentum x17 (starter: v_0 = 0" in r["stdout"] + r["stderr"]


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_combinations_exit_2_before_anything_is_written(runs, name):
    root, results = runs
    r = results[name]
    assert r["rc"] == 2, r["stderr"][-2000:]
    assert "Traceback" not in r["stderr"]
    for word in BAD[name][1]:
        assert word in r["stderr"], r["stderr"]
    assert not (root / name).exists()


def test_info_lists_every_scheme_with_its_properties(capsys):
    assert info_main(["list=schemes"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines() if line.strip()}
    # scheme increments order sum(b) kind zero-stable h_eff growth w_mean(8)
    assert rows["momentum"][1:9] == ["1", "1", "-", "multistep", "yes", "1", "1.111", "0.359"]
    assert rows["lm"][1:9] == ["1", "1", "-", "multistep", "yes", "1.053", "20", "1.046"]
    assert rows["leapfrog"][1:9] == ["1", "2", "-", "multistep", "yes", "1", "1", "1.000"]
    assert rows["ab3"][1:9] == ["1", "3", "-", "multistep", "yes", "1", "inf", "1.000"]
    assert rows["rk4"][1:9] == ["4", "4", "1", "rk", "yes", "1", "inf", "0.250"]


def test_learned_coefficients_are_logged_per_epoch(tmp_path):
    fit(tmp_path, [*TINY, "block=lm", "depth=20", "trainer.max_epochs=2", "data.limit_train=16"])
    with open(tmp_path / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/coef/s2.b2.k")]
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    assert all(-1 < float(r["train/coef/s2.b2.k"]) < 1 for r in rows)
    assert float(rows[0]["train/coef/s2.b2.k"]) != -0.05  # it learned


# ------------------------------------------------------------------------------ fair comparisons
def write_run(root: Path, options: dict, seed: int, acc: float) -> None:
    cfg = {**model_defaults(), "depth": 32, "width": 0.25, **options, "seed": seed, "data": {"name": "cifar10"},
           "optim": {"lr": 0.1}, "trainer": {"max_epochs": 182}}
    model = build_model({k: v for k, v in cfg.items() if k in model_defaults()})
    run = root / f"{'-'.join(f'{k}_{v}' for k, v in options.items())}-s{seed}"
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({
        "status": "finished", "config": cfg, "model": model_facts(model), "test": {"test/acc1": acc},
        "val": {"val/acc1": acc}, "wall_time_s": 1.0, "images_per_sec": 1.0}))


def test_compare_flags_momentum_and_names_its_matched_euler_control(tmp_path):
    variants = {"euler": dict(block="euler", placement="full_preact"),
                "momentum": dict(block="momentum", placement="full_preact", reversible=True)}
    for options in variants.values():
        for seed in range(3):
            write_run(tmp_path / "runs", options, seed, 0.9 + 0.01 * seed)
    rows, problems, _ = compare([str(tmp_path / "runs")])
    by = {r["variant"].split()[0]: r for r in rows}
    # depth 32: per stage the Euler entry unit and 4 momentum units, weights 1 - 0.9^m, m = 4..1
    scale = (1 + sum(1 - 0.9 ** m for m in range(1, 5))) / 5
    assert by["momentum-32"]["residual_scale"] == pytest.approx(scale)
    flags = by["momentum-32"]["flags"]
    assert "scale-confounded" in flags and f"step={round(scale, 4):g}" in flags and "block=euler" in flags
    assert "reversible" not in flags.split("matched control")[1]  # the control is a plain Euler network
    assert by["euler-32"]["flags"] == "" and not problems


def test_scale_controls_trains_the_euler_control_of_a_momentum_sweep():
    argv = ["-m", "block=momentum", "reversible=true", "placement=full_preact", "depth=20", "width=0.25",
            "data=synthetic", "seed=0,1", "scale_controls=true"]
    assert control_sweeps(preflight("fit", argv)) == [[
        "block=euler", "step=0.43", "placement=full_preact", "depth=20", "width=0.25", "data=synthetic", "seed=0,1",
        "scale_controls=false"]]
