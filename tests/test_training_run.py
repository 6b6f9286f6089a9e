"""Tests of training in process: run_fit end to end for every block, learning on real data, exact resume, NaN
handling and atomic checkpoints.

Expected values come from an uninterrupted run (for resume) and from files read back independently (metrics.csv
with the csv module, checkpoints with torch.load).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from horesnet import list_blocks
from horesnet.errors import ConfigError
from horesnet.training import sequence_module
from horesnet.training.checkpoint import AtomicCheckpointIO
from horesnet.training.divergence import DivergedError
from horesnet.training.module import ClassifierModule

from ._analysis_helpers import smallest_depth
from ._data_helpers import fashion_mnist_source
from ._training_helpers import QUIET, TINY, column, fit, read_csv

# --------------------------------------------------------------------------------------------------------------
# Every block trains
# --------------------------------------------------------------------------------------------------------------


def cifar_params_by_hand(units_per_stage: int, width: float = 0.25, classes: int = 10) -> int:
    """Parameters of a CIFAR ResNet with basic units and option-A shortcuts (He et al. 2015, Sec. 4.2): 3x3 stem,
    two 3x3 convs and two norms (weight and bias) per unit, the first unit of a stage widening, a linear head."""
    widths = [int(16 * width), int(32 * width), int(64 * width)]
    total, c_in = 9 * 3 * widths[0] + 2 * widths[0], widths[0]
    for c in widths:
        for u in range(units_per_stage):
            total += 9 * (c_in if u == 0 else c) * c + 9 * c * c + 4 * c
        c_in = c
    return total + widths[-1] * classes + classes


SMOKE = [(b, []) for b in list_blocks()] + [("midpoint", ["learn_step=true"])]


@pytest.mark.parametrize("block, extra", SMOKE, ids=[b + ("-learn_step" if e else "") for b, e in SMOKE])
def test_every_block_trains_one_step(tmp_path, block, extra):
    depth = smallest_depth(block)
    n = (depth - 2) // 6
    extra = extra + (["norm=group"] if block == "ode" else [])
    overrides = [*TINY, f"block={block}", f"depth={depth}", "data.limit_train=32", "data.batch_size=32",
                 "trainer.max_epochs=1", "trainer.limit_train_batches=1", "trainer.limit_val_batches=1",
                 "trainer.limit_test_batches=1", *extra]
    fit(tmp_path, overrides)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs_done"] == 1
    # one learnable step per block: an entry block and one block of the scheme per stage
    steps = 3 * 2 if "learn_step=true" in extra else 0
    assert summary["model"]["params"] == cifar_params_by_hand(n) + steps
    assert summary["model"]["units_per_stage"] == [n] * 3
    # a multistep stage adds its step count and starter rule: "... + ab2 x1 (starter: 1 Euler step)"
    assert [line.split(" x")[0] for line in summary["model"]["layout"]] == \
        [f"stage {i}: {n} units = euler* + {block}" for i in (1, 2, 3)]
    assert summary["model"]["equal_depth"] is (block != "ode")
    # the test metrics are those Lightning's CSV logger wrote while testing
    logged = [r for r in read_csv(tmp_path / "metrics.csv") if r.get("test/acc1")]
    assert len(logged) == 1
    for key in ("test/acc1", "test/acc5", "test/loss", "test/ece"):
        assert summary["test"][key] == pytest.approx(float(logged[0][key]), rel=1e-6)
    assert 0 <= summary["test"]["test/acc1"] <= summary["test"]["test/acc5"] <= 1
    losses = column(read_csv(tmp_path / "metrics.csv"), "train/loss_epoch")
    assert len(losses) == 1 and math.isfinite(losses[0][1]) and losses[0][1] > 0
    assert not list(tmp_path.rglob("*.tmp")), "a temporary file was left behind"


def test_progress_bar_can_be_disabled(tmp_path, capfd):
    """trainer.enable_progress_bar=false (what tests, CI logs and SLURM jobs want) must work: no bar is drawn."""
    summary = fit(tmp_path, [*(a for a in TINY if a != QUIET), "depth=8", "data.limit_train=32",
                             "trainer.max_epochs=1", QUIET])
    assert summary["status"] == "finished"
    out, err = capfd.readouterr()
    assert "it/s]" not in out + err and "Epoch 0:" not in out + err, "a progress bar was drawn"


# --------------------------------------------------------------------------------------------------------------
# It learns (real data)
# --------------------------------------------------------------------------------------------------------------


def test_loss_falls_on_fashion_mnist(tmp_path, monkeypatch):
    """Debian's Fashion-MNIST (or, where it is not installed, a learnable stand-in of 7000/1000 images in the same
    format: enough for the 5000 validation images and 2000 training ones)."""
    fashion_mnist_source(tmp_path / "src", monkeypatch, per_class_train=700, per_class_test=100)
    summary = fit(tmp_path / "run", ["data=fashion_mnist", f"data.root={tmp_path / 'data'}", "data.download=false",
                                     "data.limit_train=2048", "data.limit_val=512", "data.limit_test=512",
                                     "depth=8", "width=0.5", "optim.lr=0.05", "trainer.max_epochs=3", "logger=csv",
                                     QUIET])
    rows = read_csv(tmp_path / "run" / "metrics.csv")
    losses = column(rows, "train/loss_epoch")
    assert [e for e, _ in losses] == [0, 1, 2]
    assert losses[-1][1] < losses[0][1], f"training loss did not fall: {losses}"
    assert summary["test"]["test/acc1"] > 0.30, summary["test"]  # chance: 10%
    assert len(column(rows, "val/acc1")) == 3
    assert summary["config"]["data"]["name"] == "fashion_mnist" and summary["config"]["in_channels"] == 1


# --------------------------------------------------------------------------------------------------------------
# Resume
# --------------------------------------------------------------------------------------------------------------

RESUME = [*TINY, "depth=8", "data.limit_train=64", "trainer.max_epochs=3"]


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """Run A (3 epochs), run B1 (stop after epoch 1), run B2 (resume B to 3 epochs); keep the trained modules."""
    base = tmp_path_factory.mktemp("resume")
    made = []

    class Recording(ClassifierModule):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sequence_module, "ClassifierModule", Recording)  # what run_fit's make_module builds
        a = fit(base / "A", RESUME)
        b1 = fit(base / "B", [*RESUME, "stop_after_epoch=1"])
        b1_files = {p.name for p in (base / "B").iterdir()}
        b2 = fit(base / "B", [*RESUME, f"resume={base / 'B'}"])
    assert len(made) == 3
    return {"base": base, "A": a, "B1": b1, "B2": b2, "modules": made, "b1_files": b1_files}


def test_resume_equals_uninterrupted_run(resumed):
    a, b1, b2 = resumed["A"], resumed["B1"], resumed["B2"]
    base = resumed["base"]
    assert a["status"] == "finished" and a["epochs_done"] == 3
    assert b1["status"] == "stopped" and b1["epochs_done"] == 1
    assert "summary.json" not in resumed["b1_files"] and "progress.json" in resumed["b1_files"]
    assert json.loads((base / "B" / "progress.json").read_text())["status"] == "stopped"
    assert b2["status"] == "finished" and b2["epochs_done"] == 3
    assert json.loads((base / "B" / "summary.json").read_text())["status"] == "finished"
    assert Path(b2["resumed_from"]) == base / "B" / "checkpoints" / "last.ckpt"
    assert b2["test"] == a["test"], "resumed run must give exactly the uninterrupted run's test metrics"
    assert b2["val"] == a["val"]
    final_a = resumed["modules"][0].state_dict()
    final_b = resumed["modules"][2].state_dict()
    assert final_a.keys() == final_b.keys()
    for k in final_a:
        assert torch.equal(final_a[k], final_b[k]), f"{k} differs after resume"
    assert b2["train_time_s"] > b1["train_time_s"] > 0  # training time accumulates over slices


def test_last_checkpoint_is_the_final_state(resumed):
    """checkpoints/last.ckpt (what resume=auto continues from) must hold the model after the last epoch."""
    final = resumed["modules"][0].state_dict()
    ckpt = torch.load(resumed["base"] / "A" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["epoch"] == 2, ckpt["epoch"]  # Lightning stores the 0-based index of the epoch just finished
    assert ckpt["global_step"] == 6, f"last.ckpt is from step {ckpt['global_step']} of 6 (epoch {ckpt['epoch']})"
    for k, v in final.items():
        assert torch.equal(ckpt["state_dict"][k], v), f"last.ckpt {k} is not the final weights"


def test_resume_keeps_metrics_history(resumed):
    """After resuming, metrics.csv still has every epoch (the comparison plot draws val curves from it)."""
    a_rows = read_csv(resumed["base"] / "A" / "metrics.csv")
    b_rows = read_csv(resumed["base"] / "B" / "metrics.csv")
    assert column(a_rows, "val/acc1") and len(column(a_rows, "val/acc1")) == 3
    assert column(b_rows, "val/acc1") == column(a_rows, "val/acc1")
    a_loss, b_loss = column(a_rows, "train/loss_epoch"), column(b_rows, "train/loss_epoch")
    assert [e for e, _ in b_loss] == [e for e, _ in a_loss]
    assert [v for _, v in b_loss] == pytest.approx([v for _, v in a_loss])


def test_a_killed_resume_loses_no_metrics(tmp_path):
    """A resumed run that is killed (no chance to put the earlier rows back) loses nothing: the next resume finds
    every epoch logged so far, drops only the killed segment's unfinished epoch, and the final file has each epoch
    once."""
    import csv

    from horesnet.training.midepoch import earlier_metrics as _earlier_metrics
    from horesnet.training.midepoch import prepend_metrics as _prepend_metrics

    def write(rows):
        with open(tmp_path / "metrics.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["epoch", "step", "lr", "val/acc1"])
            w.writeheader()
            w.writerows(rows)

    def epoch(e, acc):  # an lr row (no epoch) at the epoch's first step, a validation row at its end
        return [{"epoch": "", "step": 10 * e, "lr": 0.1, "val/acc1": ""},
                {"epoch": e, "step": 10 * e + 9, "lr": "", "val/acc1": acc}]

    write(epoch(0, 0.5) + epoch(1, 0.6))  # first slice: epochs 0-1, then stopped
    assert [r["epoch"] for r in _earlier_metrics(tmp_path) if r["epoch"]] == ["0", "1"]
    write(epoch(2, 0.7) + epoch(3, 0.8)[:1])  # resumed: the logger starts afresh; killed during epoch 3
    earlier = _earlier_metrics(tmp_path)  # the next resume (from the end of epoch 2)
    assert [r["val/acc1"] for r in earlier if r["epoch"]] == ["0.5", "0.6", "0.7"]
    write(epoch(3, 0.85) + epoch(4, 0.9))  # epoch 3 trained again, then the run finishes

    class Trainer:
        is_global_zero, loggers = True, []

    _prepend_metrics(tmp_path / "metrics.csv", earlier, Trainer())
    with open(tmp_path / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["val/acc1"] for r in rows if r["epoch"]] == ["0.5", "0.6", "0.7", "0.85", "0.9"]
    assert [r["step"] for r in rows if not r["epoch"]] == ["0", "10", "20", "30", "40"]  # lr rows: each epoch once
    assert not (tmp_path / "metrics.earlier.csv").exists()


# --------------------------------------------------------------------------------------------------------------
# Non-finite loss
# --------------------------------------------------------------------------------------------------------------


def test_nan_loss_stops_with_clear_error(tmp_path):
    overrides = [*TINY, "depth=8", "data.limit_train=32", "data.batch_size=32", "trainer.max_epochs=3",
                 "optim.lr=1e30"]
    with pytest.raises(DivergedError) as info:
        fit(tmp_path, overrides)
    msg = str(info.value)
    # lr 1e30: the first update already blows the weights past divergence.max_abs, before any checkpoint
    assert "diverged at epoch 1, step 1" in msg and "optim.lr=1e+30" in msg
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["error"] == msg
    assert "test" not in summary
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cpus.json", "hparams.yaml", "summary.json"], \
        "nothing else is written (cpus.json: the CPU the run started on)"


# --------------------------------------------------------------------------------------------------------------
# Atomic checkpoints
# --------------------------------------------------------------------------------------------------------------


def test_atomic_checkpoint_io(tmp_path, monkeypatch):
    io_ = AtomicCheckpointIO()
    path = tmp_path / "sub" / "last.ckpt"
    io_.save_checkpoint({"w": torch.arange(1000.0), "step": 1}, path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]
    assert torch.equal(torch.load(path, weights_only=False)["w"], torch.arange(1000.0))

    real_save = torch.save

    def failing_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")  # some bytes reach the file, then the disk fills up
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="No space"):
        io_.save_checkpoint({"w": torch.zeros(1000), "step": 2}, path)
    monkeypatch.setattr(torch, "save", real_save)
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"], "temporary file left behind"
    old = torch.load(path, weights_only=False)
    assert old["step"] == 1 and torch.equal(old["w"], torch.arange(1000.0))
    io_.save_checkpoint({"w": torch.ones(3), "step": 3}, path)
    assert torch.load(path, weights_only=False)["step"] == 3


def test_resume_under_different_settings_is_refused(resumed):
    """Continuing B's checkpoint with another learning rate, step or data size would silently mix two runs."""
    base = resumed["base"]
    before = (base / "B" / "checkpoints" / "last.ckpt").read_bytes()
    for change, named in [("optim.lr=0.05", ["optim.lr", "0.1", "0.05"]), ("step=0.5", ["step", "1.0", "0.5"]),
                          ("data.limit_train=32", ["data.limit_train", "64", "32"])]:
        with pytest.raises(ConfigError) as info:
            fit(base / "B", [*RESUME, change, f"resume={base / 'B'}", "trainer.max_epochs=4"])
        assert all(word in str(info.value) for word in named), str(info.value)
    assert (base / "B" / "checkpoints" / "last.ckpt").read_bytes() == before
