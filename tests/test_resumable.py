"""In-process tests of what makes runs resumable and their progress readable: step-interval checkpoints (and a
crash after one, resumed bit for bit), the key's validation, the continue command, metrics.csv across a mid-epoch
resume, the progress bar (running loss and img/s read only when it refreshes), the bf16 warning, and the
``weights=`` notice printed once. The real signals and the run-folder lock: tests/test_interrupt.py,
tests/test_runlock.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from horesnet.cli.compose import compose
from horesnet.errors import ConfigError
from horesnet.training import interrupt, machine
from horesnet.training import run as run_module
from horesnet.training.checkpoint import AtomicCheckpointIO
from horesnet.training.console import RunProgress
from horesnet.training.midepoch import merge_metrics

from ._sync_helpers import HostReads, WatchSteps
from ._training_helpers import TINY, fit

STEPS = [*TINY, "depth=8", "data.limit_train=64", "data.batch_size=8", "trainer.max_epochs=2",
         "trainer.checkpoint_every_n_steps=3"]  # 8 steps per epoch


# --------------------------------------------------------------------------------------------------------------
# Step-interval checkpoints
# --------------------------------------------------------------------------------------------------------------


def test_step_checkpoints_are_written_every_n_steps(tmp_path, monkeypatch):
    saved = []
    real = AtomicCheckpointIO.save_checkpoint

    def record(self, checkpoint, path, storage_options=None):
        saved.append((Path(path).name, checkpoint["global_step"], checkpoint["horesnet"]["position"]["mid_epoch"]))
        return real(self, checkpoint, path, storage_options)

    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint", record)
    fit(tmp_path, STEPS)
    mid = [(name, step) for name, step, mid_epoch in saved if mid_epoch]
    # every 3 steps, except where the epoch's own checkpoint follows (steps 8 and 16 end the epochs)
    assert mid == [("last.ckpt", s) for s in (3, 6, 9, 12, 15)], saved
    ends = {(name, step) for name, step, mid_epoch in saved if not mid_epoch}  # best.ckpt: when val improved
    assert {("last.ckpt", 8), ("last.ckpt", 16)} <= ends <= {(n, s) for n in ("last.ckpt", "best.ckpt")
                                                             for s in (8, 16)}
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_crash_after_a_step_checkpoint_resumes_bit_for_bit(tmp_path, monkeypatch):
    """A run that dies at step 11 (a kill, a lost node) continues from its step-9 checkpoint, mid-epoch 2, and ends
    with the uninterrupted run's weights and metrics."""
    import pytorch_lightning as pl

    class Crash(pl.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            if trainer.global_step == 10:
                raise RuntimeError("the machine went away")

    want = fit(tmp_path / "A", STEPS)
    real_trainer = run_module.pl.Trainer
    with monkeypatch.context() as mp:
        mp.setattr(run_module.pl, "Trainer", lambda *a, callbacks=(), **k: real_trainer(
            *a, callbacks=[*callbacks, Crash()], **k))
        with pytest.raises(RuntimeError, match="went away"):
            fit(tmp_path / "B", STEPS)
    ckpt = torch.load(tmp_path / "B" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 9 and ckpt["horesnet"]["position"] == {
        "epoch": 1, "batch": 1, "batches": 8, "global_step": 9, "mid_epoch": True}
    got = fit(tmp_path / "B", [*STEPS, "resume=auto"])
    assert got["status"] == "finished" and got["val"] == want["val"] and got["test"] == want["test"]
    a = torch.load(tmp_path / "A" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "B" / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("bad", ["0", "-3", "2.5", "abc", "true"])
def test_checkpoint_every_n_steps_refuses_bad_values_by_name(bad):
    with pytest.raises(ConfigError) as info:
        compose("fit", [f"trainer.checkpoint_every_n_steps={bad}"])
    text = str(info.value)
    assert "trainer.checkpoint_every_n_steps" in text and "null" in text and "every N training steps" in text


def test_checkpoint_every_n_steps_is_horesnets_own_key():
    cfg = compose("fit", ["trainer.checkpoint_every_n_steps=100"])
    assert cfg.trainer.checkpoint_every_n_steps == 100
    assert compose("fit", []).trainer.checkpoint_every_n_steps is None
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    with initialize_config_module("horesnet.configs", version_base="1.3"):
        hydra_cfg = hydra_compose("fit", return_hydra_config=True)
    assert "trainer.checkpoint_every_n_steps" in hydra_cfg.hydra.job.config.override_dirname.exclude_keys


# --------------------------------------------------------------------------------------------------------------
# The continue command and metrics.csv across a mid-epoch resume
# --------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv, expected", [
    (["block=rk4", "resume=auto"], "python -m horesnet.fit block=rk4 resume=/runs/a"),
    (["block=rk4", "hydra.run.dir=/runs/a"], "python -m horesnet.fit block=rk4 hydra.run.dir=/runs/a resume=auto"),
    (["-m", "seed=0,1"], "python -m horesnet.fit -m seed=0,1 hydra.sweep.dir=/runs resume=auto"),
    (["name=a b"], "python -m horesnet.fit 'name=a b' resume=/runs/a"),
])
def test_the_continue_command_is_the_users_own(monkeypatch, argv, expected):
    monkeypatch.setattr(interrupt, "ARGV", argv)
    assert interrupt.continue_command(Path("/runs/a")) == expected


def test_metrics_of_an_epoch_resumed_mid_way_keep_its_earlier_steps():
    def row(epoch, step, loss):
        return {"epoch": str(epoch), "step": str(step), "train/loss_step": str(loss)}

    earlier = [row(0, s, s) for s in range(10)] + [row(1, s, s) for s in range(10, 14)]  # interrupted at step 14
    now = [row(1, s, s) for s in range(14, 20)]
    assert [r["step"] for r in merge_metrics(earlier, now)] == [str(s) for s in range(20)]
    killed = earlier + [row(1, s, -1) for s in range(14, 17)]  # a killed slice logged past its last checkpoint
    assert merge_metrics(killed, now) == merge_metrics(earlier, now)


# --------------------------------------------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------------------------------------------


def _train_with_bar(tmp_path, refresh_s: float) -> dict:
    import pytorch_lightning as pl

    from horesnet.data import ArrayDataModule
    from horesnet.training.module import ClassifierModule

    data = ArrayDataModule("synthetic", batch_size=8, eval_batch_size=32, val_size=32, limit_train=64, limit_test=32,
                           synthetic={"train_size": 96, "test_size": 32, "image_size": 8})
    module = ClassifierModule({"block": "euler", "depth": 8, "width": 0.25, "num_classes": 10},
                              {"name": "sgd", "lr": 0.05}, divergence={"check_every": 1000})
    mode = HostReads()
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, log_every_n_steps=1000, num_sanity_val_steps=0,
                         limit_val_batches=0, default_root_dir=tmp_path,
                         callbacks=[WatchSteps(mode), RunProgress(show_bar=True, refresh_s=refresh_s)])
    trainer.fit(module, datamodule=data)
    return mode.reads


def test_the_bar_reads_the_loss_only_when_it_refreshes(tmp_path, capfd):
    quiet = _train_with_bar(tmp_path, refresh_s=1e9)
    assert sorted(b for b in quiet if b is not None) in ([], [7]), quiet  # 7: the guard's epoch-end check
    every = _train_with_bar(tmp_path, refresh_s=0)  # refreshing after every step: one read of the loss per step
    assert sorted(b for b in every if b is not None) == list(range(8)), every
    err = capfd.readouterr().err
    assert "img/s" in err and "loss " in err, err[-2000:]


def test_eta_is_the_mean_rate_of_this_start():
    p = RunProgress(show_bar=False)
    p._start, p._initial, p._n, p._total = 100.0, 10, 30, 110  # resumed at step 10; 20 steps in 20 s
    assert p.eta(120.0) == pytest.approx(80.0)


def test_bf16_on_a_cpu_without_bf16_instructions_is_warned_about(monkeypatch):
    monkeypatch.setattr(machine, "_cpuinfo", lambda: ("AMD EPYC", {"avx2", "fma"}))
    text = machine.bf16_warning("bf16-mixed", "cpu")
    assert "without bf16 instructions" in text and "AMD EPYC" in text and "32-true" in text
    assert machine.bf16_warning("32-true", "cpu") is None and machine.bf16_warning("bf16-mixed", "cuda") is None
    monkeypatch.setattr(machine, "_cpuinfo", lambda: ("Xeon", {"avx2", "avx512_bf16", "amx_bf16"}))
    assert machine.bf16_warning("bf16-mixed", "cpu") is None and machine.bf16_instructions() == [
        "avx512_bf16", "amx_bf16"]
    monkeypatch.setattr(machine, "_cpuinfo", lambda: ("", set()))  # no /proc/cpuinfo: cannot tell, no warning
    assert machine.bf16_warning("bf16-mixed", "cpu") is None


def test_the_weights_classifier_notice_is_printed_once(tmp_path, capfd):
    """The checks before the run load ``weights=`` silently; the run itself says that the classifier starts
    fresh (tests/test_torchvision_weights.py)."""
    import horesnet
    from horesnet.cli.preflight import check_config
    from horesnet.models.torchvision import to_torchvision_state_dict

    path = tmp_path / "resnet18.pth"
    source = horesnet.build_model(arch="imagenet", depth=18, width=0.25, num_classes=1000)
    torch.save(to_torchvision_state_dict(source), path)
    check_config(compose("fit", ["data=synthetic", "arch=imagenet", "depth=18", "width=0.25", f"weights={path}",
                                 "data.batch_size=4"]))
    assert "classifier" not in capfd.readouterr().err
