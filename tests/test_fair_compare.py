"""Fair comparisons (docs/design.md, "Fair comparisons"): one model config, residual scale, confound flags.

Run summaries are written with the model facts of real networks (``model_facts(build_model(...))``, what
``horesnet.fit`` records) and chosen accuracies; the expected residual scales are the hand sums of h*b_i over units
(Euler 1, RK4 (3*1 + 12*0.25)/15 at depth 32, ...).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import horesnet
from horesnet import build_model
from horesnet.cli.compose import compose
from horesnet.comparison.table import compare, variant_label
from horesnet.models import ModelConfig, model_defaults
from horesnet.models.scale import residual_scale, residual_weights
from horesnet.training.run import model_facts

from ._cli_helpers import cli_env, run_cli
from ._training_helpers import CLI_TINY

DEPTH = 32  # 5 units per stage: an Euler entry unit + one RK4 block


def write_run(root: Path, options: dict, seed: int, test_acc: float) -> None:
    cfg = {**model_defaults(), "depth": DEPTH, "width": 0.25, **options, "seed": seed,
           "data": {"name": "cifar10"}, "optim": {"lr": 0.1}, "trainer": {"max_epochs": 182}}
    model = build_model({k: v for k, v in cfg.items() if k in model_defaults()})
    run_dir = root / f"{'-'.join(f'{k}_{v}' for k, v in options.items())}-s{seed}"
    run_dir.mkdir(parents=True)
    summary = {"status": "finished", "config": cfg, "model": model_facts(model),
               "test": {"test/acc1": test_acc}, "val": {"val/acc1": test_acc}, "wall_time_s": 1.0,
               "images_per_sec": 1.0}
    (run_dir / "summary.json").write_text(json.dumps(summary))


@pytest.mark.parametrize("options, scale", [
    (dict(block="euler"), 1.0),
    (dict(block="rk4"), (3 * 1 + 12 * 0.25) / 15),
    (dict(block="midpoint"), (3 * 1 + 12 * 0.5) / 15),  # b = (0, 1): half the units carry weight 1
    (dict(block="euler", step=0.25), 0.25),
    (dict(block="rk4", depth=56), (3 * 1 + 24 * 0.25) / 27),
    (dict(block="midpoint", depth=56), (3 * 1 + 24 * 0.5) / 27),
    # per stage: the entry unit and one RK4 block of four nested midpoint steps (2 units each): inner weights
    # (0, 1) times the outer 1/6, 1/3, 1/3, 1/6 -> the stage sums to 1 + 1 over 9 units
    (dict(block="rk4", inner="midpoint", depth=56), (3 * 1 + 3 * (1 / 6 + 1 / 3 + 1 / 3 + 1 / 6)) / 27),
])
def test_residual_scale_is_the_mean_of_h_times_b(options, scale):
    model = build_model(**{"depth": DEPTH, "width": 0.25, **options})
    got = residual_scale(model)
    assert len(residual_weights(model)) == sum(model.layout.units_per_stage)
    assert got["mean"] == pytest.approx(scale, abs=1e-12)
    assert got["per_stage"] == pytest.approx([scale] * 3, abs=1e-12)


def test_four_variants_four_rows_with_scale_and_the_rk4_control(tmp_path):
    accs = {"euler": [0.90, 0.91, 0.92], "rk4": [0.93, 0.94, 0.95], "euler_step": [0.925, 0.935, 0.945],
            "group": [0.89, 0.90, 0.91]}
    variants = {"euler": {"block": "euler"}, "rk4": {"block": "rk4"}, "euler_step": {"block": "euler", "step": 0.25},
                "group": {"block": "euler", "norm": "group"}}
    for name, options in variants.items():
        for seed, acc in enumerate(accs[name]):
            write_run(tmp_path / "runs", options, seed, acc)
    rows, problems, out = compare([str(tmp_path / "runs")])
    by = {r["variant"]: r for r in rows}
    assert set(by) == {"euler-32 width=0.25", "rk4-32 width=0.25", "euler-32 width=0.25 step=0.25",
                       "euler-32 width=0.25 norm=group"}
    assert not problems
    assert by["rk4-32 width=0.25"]["residual_scale"] == pytest.approx(0.4)
    assert by["euler-32 width=0.25 step=0.25"]["residual_scale"] == pytest.approx(0.25)
    assert by["euler-32 width=0.25 norm=group"]["flags"] == ""  # same scale, same parameters
    rk4 = by["rk4-32 width=0.25"]["flags"]
    assert "scale-confounded: residual scale 0.4 vs 1 (euler-32 width=0.25)" in rk4
    assert "matched control euler-32 width=0.25 step=0.4" in rk4
    assert "python -m horesnet.fit -m block=euler step=0.4 depth=32 width=0.25 data=cifar10 seed=0,1,2" in rk4
    # an Euler network at another step is not "confounded" with itself as its own control: it is the scale effect
    assert by["euler-32 width=0.25 step=0.25"]["flags"] == ("Euler at residual scale 0.25 vs 1 (euler-32 width=0.25): "
                                                            "its difference from the reference is the scale effect "
                                                            "itself")
    md = (out / "comparison.md").read_text()
    assert sum(line.startswith("| euler-32") and "| euler | 32 |" in line for line in md.splitlines()) == 3
    assert "| rk4-32 width=0.25 | rk4 | 32 | 5/5/5 | 0.400 |" in md
    # rk4 - euler: +3.00 points, sd 1 in both arms -> se = sqrt(2/3), t = 3.674, df = 4, t_0.975(4) = 2.7764
    assert "| rk4-32 width=0.25 | euler-32 width=0.25 | +3.00 | [+0.73, +5.27] | 0.021 | " in md


def test_a_matched_control_is_named_as_the_control_of_its_scheme(tmp_path):
    for seed in range(3):
        write_run(tmp_path / "runs", {"block": "euler"}, seed, 0.9)
        write_run(tmp_path / "runs", {"block": "rk4"}, seed, 0.91)
        write_run(tmp_path / "runs", {"block": "euler", "step": 0.4}, seed, 0.92)
    by = {r["variant"]: r for r in compare([str(tmp_path / "runs")])[0]}
    control = by["euler-32 width=0.25 step=0.4"]["flags"]
    assert "scale-confounded" not in control and "matched control" not in control
    assert control.endswith("the matched-scale control of rk4-32 width=0.25")
    assert "matched control euler-32 width=0.25 step=0.4 (in this comparison)" in by["rk4-32 width=0.25"]["flags"]


def test_a_present_control_is_named_not_commanded(tmp_path):
    for seed in range(3):
        write_run(tmp_path / "runs", {"block": "euler"}, seed, 0.9)
        write_run(tmp_path / "runs", {"block": "rk4"}, seed, 0.9)
        write_run(tmp_path / "runs", {"block": "euler", "step": 0.4}, seed, 0.9)
    rows, _, _ = compare([str(tmp_path / "runs")])
    flags = {r["variant"]: r["flags"] for r in rows}["rk4-32 width=0.25"]
    assert "matched control euler-32 width=0.25 step=0.4 (in this comparison)" in flags


def test_labels_name_every_option_that_differs_from_its_default():
    run = {"config": {**model_defaults(), "block": "euler", "depth": 56, "stem_stride": 2, "norm": "group",
                      "stride_in_3x3": True, "ode_rtol": 1e-4, "num_classes": 100}}
    assert variant_label(run) == "euler-56 stem_stride=2 norm=group stride_in_3x3=True ode_rtol=0.0001"
    older = {"config": {"block": "rk4", "depth": 56}}  # a summary from before later options existed
    assert variant_label(older) == "rk4-56"


def test_changing_one_default_moves_every_consumer(tmp_path):
    """A copy of the package whose ModelConfig says width=0.5: build_model, the composed Hydra config, the schema's
    view, summary labels and info all follow, with no other edit."""
    src = Path(horesnet.__file__).parent
    copy = tmp_path / "pkg" / "horesnet"
    shutil.copytree(src, copy, ignore=shutil.ignore_patterns("__pycache__"))
    config_py = copy / "models" / "config.py"
    text = config_py.read_text()
    old = 'width: float = option(1, POSITIVE,'
    assert text.count(old) == 1
    config_py.write_text(text.replace(old, 'width: float = option(0.5, POSITIVE,'))
    script = textwrap.dedent("""
        import io, contextlib
        from horesnet import build_model
        from horesnet.comparison.table import variant_label
        from horesnet.cli.compose import compose
        from horesnet.models import model_defaults
        from horesnet import info
        print(build_model(depth=20).config["width"])
        print(compose("fit", ["data=synthetic"]).width, compose("info", []).width)
        print(variant_label({"config": {"block": "euler", "depth": 20, "width": 1}}))
        print(variant_label({"config": {"block": "euler", "depth": 20, "width": 0.5}}))
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            info.main(["depth=20"])
        print([l for l in buf.getvalue().splitlines() if l.startswith("parameters")][0])
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env={"PYTHONPATH": str(tmp_path / "pkg"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.splitlines()
    assert lines[0] == "0.5" and lines[1] == "0.5 0.5"
    assert lines[2] == "euler-20 width=1" and lines[3] == "euler-20"
    half = sum(p.numel() for p in build_model(depth=20, width=0.5).parameters())
    assert lines[4] == f"parameters: {half:,}"


def test_model_config_is_what_hydra_composes():
    fit = compose("fit", ["data=synthetic"])
    for key, value in model_defaults().items():
        if key not in ("num_classes", "in_channels"):  # fit takes these from the data
            assert fit[key] == value, key
    assert ModelConfig().block == "euler" and ModelConfig(block="rk4").as_dict()["block"] == "rk4"


def test_scale_controls_adds_the_matched_euler_control_to_a_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "block=rk4", *CLI_TINY, "depth=32", "seed=0", "scale_controls=true", f"hydra.sweep.dir={sweep}"]
    res = run_cli("horesnet.fit", args, tmp_path, cli_env(tmp_path), timeout=600)
    assert res["rc"] == 0, res["stderr"][-3000:]
    runs = [json.loads(p.read_text()) for p in sorted(sweep.rglob("summary.json"))]
    got = sorted((r["config"]["block"], r["config"]["step"], r["model"]["residual_scale"]["mean"]) for r in runs)
    assert got == [("euler", 0.4, pytest.approx(0.4)), ("rk4", 1.0, pytest.approx(0.4))]
    # the sweep's own record survives the control sweep, whose record lies beside it
    assert "- block=rk4" in (sweep / "multirun.yaml").read_text()
    assert "- block=euler" in (sweep / "multirun.control1.yaml").read_text()
    rows, problems, _ = compare([str(sweep)])  # rk4 against its control: matched in residual scale and parameters
    assert not problems and {r["variant"]: r["flags"] for r in rows} == {"rk4-32 width=0.25": "",
                                                                         "euler-32 width=0.25 step=0.4": ""}


def test_the_control_command_repeats_the_variant_runs_command_line(tmp_path):
    for seed in (0, 1, 2):
        write_run(tmp_path / "runs", {"block": "euler"}, seed, 0.9)
        write_run(tmp_path / "runs", {"block": "rk4"}, seed, 0.9)
    for run in (tmp_path / "runs").glob("block_rk4-s*"):
        (run / ".hydra").mkdir()
        (run / ".hydra" / "overrides.yaml").write_text(
            "- block=rk4\n- depth=32\n- width=0.25\n- seed=0\n- optim.lr=0.05\n- trainer.max_epochs=3\n- resume=auto\n")
    rows, _, _ = compare([str(tmp_path / "runs")])
    flags = {r["variant"]: r["flags"] for r in rows}["rk4-32 width=0.25"]
    assert ("train it with: python -m horesnet.fit -m block=euler step=0.4 depth=32 width=0.25 optim.lr=0.05 "
            "trainer.max_epochs=3 seed=0,1,2)") in flags
