"""A user's own analysis study, added with no edit to horesnet (docs/extending_studies.md): this file IS the plugin.

At import it registers ``my_study`` (per stage, the mean absolute weight of its conv layers, times the option
``my_scale``). The real command line loads it with ``plugins=[this file]`` and runs it on a checkpoint written here
by hand (the format ``horesnet.fit`` writes: model hyper-parameters and ``model.``-prefixed weights); the expected
numbers are recomputed from that checkpoint's tensors, picked by their names, not by the study's code.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from horesnet.analysis import Option, register_study
from horesnet.cli.schema import Spec

if __package__:  # pytest (tests.test_extension_study); as a plugin file, only the registrations run
    from ._cli_helpers import cli_env, run_cli

# --------------------------------------------------------------------------------------------------------------
# The plugin: everything a user writes to add a study
# --------------------------------------------------------------------------------------------------------------

def conv_weights_per_stage(model, data, options) -> dict[str, list[dict]]:
    records = []
    for index, stage in enumerate(model.stages, start=1):
        weights = [m.weight.detach() for m in stage.modules() if isinstance(m, nn.Conv2d)]
        total = sum(float(w.abs().sum()) for w in weights)
        count = sum(w.numel() for w in weights)
        records.append({"stage": f"s{index}", "convs": len(weights),
                        "mean_abs_weight": options["my_scale"] * total / count})
    return {"my_study": records}


def plot_conv_weights(records, path, title=""):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar([r["stage"] for r in records], [r["mean_abs_weight"] for r in records])
    ax.set_ylabel("mean |w| of the conv layers")
    ax.set_title(f"{title} conv weights per stage")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


register_study(
    "my_study", conv_weights_per_stage, {"my_study": plot_conv_weights},
    options={"my_scale": Option(1.0, Spec("real", low=0, high=10, open_low=True), "multiplies every value")},
    needs_data=False, description="mean absolute conv weight per stage (a weight statistic: no data needed)")

# --------------------------------------------------------------------------------------------------------------
# The tests
# --------------------------------------------------------------------------------------------------------------


PLUGIN = str(Path(__file__).resolve())
MODEL = {"depth": 14, "block": "euler", "width": 0.25}  # 2 units per stage, 2 convs per unit, shortcut A: no conv


def write_checkpoint(path: Path) -> dict:
    """A checkpoint as horesnet.fit writes it, with seeded random weights; returns its state dict."""
    from horesnet import build_model

    torch.manual_seed(7)
    model = build_model(**MODEL)
    state = model.state_dict()
    path.parent.mkdir(parents=True)
    torch.save({"hyper_parameters": {"model": dict(MODEL), "data": {"name": "synthetic"}},
                "state_dict": {f"model.{k}": v for k, v in state.items()}}, path)
    return state


def expected_rows(state: dict, scale: float) -> list[tuple[str, int, float]]:
    """(stage, number of conv weights, scale * mean |w|) from the state dict alone: the 4-D tensors under
    ``stages.<i>.`` are that stage's conv kernels."""
    rows = []
    for i in range(3):
        kernels = [v for k, v in state.items() if k.startswith(f"stages.{i}.") and v.dim() == 4]
        flat = torch.cat([k.double().abs().flatten() for k in kernels])
        rows.append((f"s{i + 1}", len(kernels), scale * float(flat.mean())))
    return rows


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("extension_study")
    ckpt = base / "run" / "checkpoints" / "last.ckpt"
    state = write_checkpoint(ckpt)
    args = [f"plugins=[{PLUGIN}]", f"ckpt={ckpt}", "study=my_study", "my_scale=2.5", "wandb=disabled",
            f"out={base / 'out'}"]
    res = run_cli("horesnet.analyze", args, base, cli_env(base / "home"), 240)
    assert not res["timed_out"], f"timed out\n{res['stderr'][-2000:]}"
    return {"base": base, "ckpt": ckpt, "state": state, "run": res}


def test_the_plugin_study_runs_from_the_command_line(runs):
    res = runs["run"]
    assert res["rc"] == 0, res["stderr"][-3000:]
    assert "Traceback" not in res["stderr"]
    assert "horesnet.analyze: euler-14: my_study (3 rows" in res["stdout"], res["stdout"]
    out = runs["base"] / "out"
    # analysis.json: the manifest of finished studies (an interrupted run resumes with the others)
    assert sorted(p.name for p in out.iterdir()) == ["analysis.json", "my_study.csv", "my_study.json", "my_study.png"]
    assert list(json.loads((out / "analysis.json").read_text())["studies"]) == ["my_study"]
    assert (out / "my_study.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    expected = expected_rows(runs["state"], 2.5)
    assert [n for _, n, _ in expected] == [4, 4, 4]  # two basic units of two 3x3 convs per stage
    with open(out / "my_study.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["stage"], int(r["convs"])) for r in rows] == [(s, n) for s, n, _ in expected]
    for r, (_, _, value) in zip(rows, expected, strict=True):
        assert float(r["mean_abs_weight"]) == pytest.approx(value, rel=1e-6)
    records = json.loads((out / "my_study.json").read_text())
    assert [r["mean_abs_weight"] for r in records] == pytest.approx([v for _, _, v in expected], rel=1e-6)


def test_an_unknown_study_lists_the_plugin_study(runs, tmp_path, capsys):
    """In-process: this module, imported by pytest, has registered my_study as the plugin does at import."""
    from horesnet.analyze import main

    rc = main([f"ckpt={runs['ckpt']}", "study=typo", "wandb=disabled", f"out={tmp_path / 'out'}"])
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("horesnet.analyze: error:"), err
    for needle in ("'typo'", "'my_study'", "'lesion'", "'paths'", "'robustness'", "'all'"):
        assert needle in lines[0], f"{needle} missing from: {lines[0]}"


@pytest.mark.parametrize("value", ["-1", "0", "11", "big"])
def test_a_bad_option_value_is_refused(value, runs, tmp_path, capsys):
    from horesnet.analyze import main

    rc = main([f"ckpt={runs['ckpt']}", "study=my_study", f"my_scale={value}", "wandb=disabled",
               f"out={tmp_path / 'out'}"])
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("horesnet.analyze: error:"), err
    shown = f"'{value}'" if value == "big" else value
    for needle in (f"my_scale={shown}", "> 0", "<= 10"):
        assert needle in lines[0], f"{needle} missing from: {lines[0]}"
    assert not (tmp_path / "out").exists()


def test_the_option_default_comes_from_the_registration():
    from horesnet.cli.compose import compose

    assert compose("analyze", [])["my_scale"] == 1.0
    assert compose("analyze", ["my_scale=3"])["my_scale"] == 3
