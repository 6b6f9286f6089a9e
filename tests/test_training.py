"""Tests of training: run_fit end to end for every block, learning on real data, exact resume, NaN handling,
atomic checkpoints, the optimiser recipe (He et al. 2015, Sec. 4.2), W&B offline logging and the fit CLI.

Expected values come from the recipe as published (lr 0.1, /10 at 50% and 75% of training, weight decay 1e-4
on weights only, warm-up at 0.01 for ResNet-110), from an uninterrupted run (for resume) and from files read
back independently (metrics.csv with the csv module, the W&B offline log with tests/wandb_offline.py).

The command-line tests are slow to start (each imports torch and Lightning), so they are started together in
a small background pool as soon as this module's first test runs, and run while the in-process tests do.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

import horesnet
from horesnet import build_model, get_scheme, list_blocks
from horesnet.config import compose
from horesnet.errors import ConfigError
from horesnet.training import loggers
from horesnet.training import run as run_module
from horesnet.training.checkpoint import AtomicCheckpointIO, check_checkpoint
from horesnet.training.module import ClassifierModule, NonFiniteLossError
from horesnet.training.optim import build_optimizer, lr_factor
from horesnet.training.run import run_fit

sys.path.insert(0, str(Path(__file__).parent))
import wandb_offline  # noqa: E402

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
QUIET = "trainer.enable_progress_bar=false"
TINY = ["data=synthetic", "width=0.25", "logger=csv", "data.limit_val=32", "data.limit_test=32",
        "data.eval_batch_size=32", QUIET]
CLI_TINY = ["data=synthetic", "depth=8", "width=0.25", "logger=csv", "trainer.max_epochs=1",
            "data.limit_train=32", "data.limit_val=32", "data.limit_test=32", QUIET]


def fit(run_dir: Path, overrides: list[str]) -> dict:
    return run_fit(compose("fit", overrides), run_dir=run_dir, group=None)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def column(rows: list[dict], key: str) -> list[tuple[int, float]]:
    """(epoch, value) of every row that has ``key``."""
    return [(int(r["epoch"]), float(r[key])) for r in rows if r.get(key)]


# --------------------------------------------------------------------------------------------------------------
# Command-line jobs, run in the background
# --------------------------------------------------------------------------------------------------------------

BAD_INPUTS = {
    "block": (["block=foo"], ["foo", "rk4"]),
    "depth": (["depth=57"], ["57"]),
    "data": (["data=nosuch"], ["nosuch", "cifar10"]),
    "option": (["foo=1"], ["foo"]),
    "nodata": (["data=cifar10", "data.root={root}", "data.download=false"], ["{root}", "cifar-10-python.tar.gz"]),
}


def _run_cli(module: str, args: list[str], cwd: Path, env: dict, timeout: float) -> dict:
    """Run ``python -m module args`` in its own process group (killed whole on timeout); stdin closed."""
    proc = subprocess.Popen([sys.executable, "-m", module, *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        return {"rc": proc.returncode, "stdout": out, "stderr": err, "timed_out": False}
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return {"rc": None, "stdout": out, "stderr": err, "timed_out": True}


def _cli_env(home: Path | None = None) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("WANDB_API_KEY", "WANDB_MODE", "HYDRA_FULL_ERROR", "HORESNET_DATA")}
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(Path(horesnet.__file__).parent.parent), env.get("PYTHONPATH", "")])
    if home is not None:
        env["HOME"] = str(home)
    return env


def _jobs(base: Path) -> dict[str, tuple]:
    """name -> (module, args, cwd, env, timeout); folders are created here."""
    jobs = {}
    for d in ("ddp", "sweep", "wandb", "wandb_home", "sweep_home", "nan"):
        (base / d).mkdir()
    jobs["ddp"] = ("horesnet.fit", ["trainer=ddp", "trainer.devices=2", *CLI_TINY, "data.limit_train=64",
                                    f"hydra.run.dir={base / 'ddp' / 'run'}"], base / "ddp", _cli_env(), 240)
    # a sweep logs one W&B run per member, grouped by the sweep folder's name (offline here: no API key)
    jobs["sweep"] = ("horesnet.fit", ["-m", "block=euler,midpoint", "seed=0,1", *CLI_TINY, "depth=20",
                                      "logger=wandb", f"hydra.sweep.dir={base / 'sweep' / 'out'}"],
                     base / "sweep", _cli_env(home=base / "sweep_home"), 240)
    # logger=wandb (the default), mode auto, no API key anywhere (HOME without .netrc): must go offline by itself
    jobs["wandb"] = ("horesnet.fit", [*(a for a in CLI_TINY if a != "logger=csv"), "logger=wandb",
                                      f"hydra.run.dir={base / 'wandb' / 'run'}"], base / "wandb",
                     _cli_env(home=base / "wandb_home"), 180)
    jobs["nan"] = ("horesnet.fit", [*CLI_TINY, "trainer.max_epochs=3", "optim.lr=1e30",
                                    f"hydra.run.dir={base / 'nan' / 'run'}"], base / "nan", _cli_env(), 180)
    for key, (args, _) in BAD_INPUTS.items():
        cwd = base / f"bad_{key}"
        cwd.mkdir()
        root = base / f"empty_{key}"
        root.mkdir()
        jobs[f"bad_{key}"] = ("horesnet.fit", [a.format(root=root) for a in args], cwd, _cli_env(), 120)
    return jobs


def needs_cli(*names):
    def mark(fn):
        fn.cli_jobs = names
        return fn
    return mark


class CliPool:
    def __init__(self, base: Path, names: list[str]):
        self.base = base
        self.specs = _jobs(base)
        self.pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="cli")
        self.futures: dict[str, Future] = {n: self.pool.submit(_run_cli, *self.specs[n]) for n in names}

    def result(self, name: str) -> dict:
        if name not in self.futures:  # not pre-started (test selected on its own): run now
            self.futures[name] = self.pool.submit(_run_cli, *self.specs[name])
        return self.futures[name].result()

    def cwd(self, name: str) -> Path:
        return self.specs[name][2]


@pytest.fixture(scope="module", autouse=True)
def cli(request, tmp_path_factory):
    """Start every command-line job that the selected tests of this module need (longest first)."""
    wanted = []
    for item in request.session.items:
        if item.module is request.module:
            wanted += getattr(item.function, "cli_jobs", ())
    order = ["ddp", "sweep", "wandb", "nan"] + [f"bad_{k}" for k in BAD_INPUTS]
    pool = CliPool(tmp_path_factory.mktemp("cli"), [n for n in order if n in wanted])
    yield pool
    pool.pool.shutdown(wait=True, cancel_futures=True)


def assert_clean_failure(res: dict, *names: str) -> str:
    assert not res["timed_out"], "the command hung"
    err = res["stderr"]
    assert res["rc"] not in (0, None), f"expected a non-zero exit, got {res['rc']}\n{err[-2000:]}"
    assert "Traceback" not in err and 'File "' not in err, f"a traceback instead of a message:\n{err[-3000:]}"
    assert "error" in err.lower(), err[-2000:]
    for name in names:
        assert name in err, f"the message does not name {name!r}:\n{err[-2000:]}"
    return err


# --------------------------------------------------------------------------------------------------------------
# Every block trains
# --------------------------------------------------------------------------------------------------------------


def smallest_depth(block: str) -> int:
    """CIFAR depth 6n+2 whose stages hold one Euler entry block plus one block of the scheme (n = s + 1)."""
    stages = 1 if block == "ode" else get_scheme(block).stages
    return 6 * (stages + 1) + 2


SMOKE = [(b, []) for b in list_blocks()] + [("midpoint", ["learn_step=true"])]


@pytest.mark.parametrize("block, extra", SMOKE, ids=[b + ("-learn_step" if e else "") for b, e in SMOKE])
def test_every_block_trains_one_step(tmp_path, block, extra):
    depth = smallest_depth(block)
    extra = extra + (["norm=group"] if block == "ode" else [])
    overrides = [*TINY, f"block={block}", f"depth={depth}", "data.limit_train=32", "data.batch_size=32",
                 "trainer.max_epochs=1", "trainer.limit_train_batches=1", "trainer.limit_val_batches=1",
                 "trainer.limit_test_batches=1", *extra]
    returned = fit(tmp_path, overrides)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs_done"] == 1
    assert summary["config"]["block"] == block and summary["config"]["depth"] == depth
    model = build_model(block=block, depth=depth, width=0.25, norm="group" if block == "ode" else "batch",
                        learn_step=bool(extra and "learn_step=true" in extra))
    assert summary["model"]["params"] == sum(p.numel() for p in model.parameters())
    assert summary["model"]["units_per_stage"] == [depth // 6] * 3
    layout = "\n".join(summary["model"]["layout"])
    assert len(summary["model"]["layout"]) >= 3 and block in layout
    assert summary["model"]["equal_depth"] is (block != "ode")
    for key in ("test/acc1", "test/acc5", "test/loss", "test/ece"):
        assert math.isfinite(summary["test"][key])
    assert 0 <= summary["test"]["test/acc1"] <= summary["test"]["test/acc5"] <= 1
    assert summary["test"] == pytest.approx(returned["test"])
    losses = column(read_csv(tmp_path / "metrics.csv"), "train/loss_epoch")
    assert len(losses) == 1 and math.isfinite(losses[0][1]) and losses[0][1] > 0
    assert not list(tmp_path.rglob("*.tmp")), "a temporary file was left behind"


def test_progress_bar_can_be_disabled(tmp_path):
    """trainer.enable_progress_bar=false (what tests, CI logs and SLURM jobs want) must work."""
    summary = fit(tmp_path, [*TINY, "depth=8", "data.limit_train=32", "trainer.max_epochs=1", QUIET])
    assert summary["status"] == "finished"
    assert summary["config"]["trainer"]["enable_progress_bar"] is False


# --------------------------------------------------------------------------------------------------------------
# It learns (real data)
# --------------------------------------------------------------------------------------------------------------


def test_loss_falls_on_fashion_mnist(tmp_path):
    assert FASHION_DIR.is_dir(), (
        f"{FASHION_DIR} is missing: install Debian's dataset-fashion-mnist package (.ci/run does this).")
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
        mp.setattr(run_module, "ClassifierModule", Recording)
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
    assert ckpt["epoch"] in (2, 3), ckpt["epoch"]  # the last epoch's index, or the count of epochs done
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


# --------------------------------------------------------------------------------------------------------------
# Non-finite loss
# --------------------------------------------------------------------------------------------------------------


def test_nan_loss_stops_with_clear_error(tmp_path):
    overrides = [*TINY, "depth=8", "data.limit_train=32", "data.batch_size=32", "trainer.max_epochs=3",
                 "optim.lr=1e30"]
    with pytest.raises(NonFiniteLossError) as info:
        fit(tmp_path, overrides)
    msg = str(info.value)
    assert ("nan" in msg or "inf" in msg) and "optim.lr" in msg and "lr=1e+30" in msg
    assert not (tmp_path / "summary.json").exists()
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert last.is_file(), "epoch 0 (finite) should have left a checkpoint"
    ckpt = check_checkpoint(last)
    assert ckpt["global_step"] >= 1
    module = ClassifierModule.load_from_checkpoint(last, map_location="cpu")
    assert module.hparams.model["depth"] == 8
    assert not list(tmp_path.rglob("*.tmp"))


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


# --------------------------------------------------------------------------------------------------------------
# Optimiser recipe
# --------------------------------------------------------------------------------------------------------------


def _optim_cfg(*overrides: str) -> dict:
    return OmegaConf.to_container(compose("fit", list(overrides)).optim, resolve=True)


def _decay_of(groups: list[dict]) -> dict[int, float]:
    out = {}
    for g in groups:
        for p in g["params"]:
            assert id(p) not in out, "a parameter is in two groups"
            out[id(p)] = g["weight_decay"]
    return out


@pytest.mark.parametrize("norm", ["batch", "group"])
def test_weight_decay_groups(norm):
    model = build_model(block="midpoint", depth=20, width=0.25, learn_step=True, norm=norm)
    steps = model.learnable_steps
    assert steps, "learn_step=True must give learnable steps"
    opt = build_optimizer(model, _optim_cfg(), 100)["optimizer"]
    decay = _decay_of(opt.param_groups)
    assert set(decay) == {id(p) for p in model.parameters()}, "every parameter is optimised exactly once"
    norm_types = (nn.BatchNorm2d, nn.GroupNorm)
    norms = [p for m in model.modules() if isinstance(m, norm_types) for p in m.parameters(recurse=False)]
    convs = [m.weight for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert norms and convs
    assert all(decay[id(p)] == 0.0 for p in norms), "norm parameters must not be decayed by default"
    assert all(decay[id(p)] == 0.0 for p in steps), "learnable steps must not be decayed by default"
    assert all(decay[id(p)] == pytest.approx(1e-4) for p in convs), "conv weights get weight decay 1e-4"
    opt = build_optimizer(model, _optim_cfg("optim.step_weight_decay=5e-4", "optim.norm_weight_decay=2e-5"),
                          100)["optimizer"]
    decay = _decay_of(opt.param_groups)
    assert all(decay[id(p)] == pytest.approx(5e-4) for p in steps)
    assert all(decay[id(p)] == pytest.approx(2e-5) for p in norms)
    assert all(decay[id(p)] == pytest.approx(1e-4) for p in convs)
    assert isinstance(opt, torch.optim.SGD)
    assert all(g["momentum"] == 0.9 and g["lr"] == pytest.approx(0.1) for g in opt.param_groups)


def _lrs(cfg: dict, total: int) -> list[float]:
    """The lr used at each of ``total`` optimiser steps, by driving the real optimiser and scheduler."""
    model = nn.Linear(2, 2)
    conf = build_optimizer(model, cfg, total)
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    assert conf["lr_scheduler"]["interval"] == "step"
    lrs = []
    for _ in range(total):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_multistep_schedule_he_et_al():
    # 64k iterations: lr 0.1, 0.01 from 32k, 0.001 from 48k (He et al. 2015, Sec. 4.2)
    args = (64000, "multistep", [0.5, 0.75], 0.1, 0, 1.0)
    for step, factor in ((0, 1.0), (31999, 1.0), (32000, 0.1), (47999, 0.1), (48000, 0.01), (63999, 0.01)):
        assert lr_factor(step, *args) == pytest.approx(factor), step
    lrs = _lrs(_optim_cfg(), 8)
    assert lrs == pytest.approx([0.1] * 4 + [0.01] * 2 + [0.001] * 2)


def test_warmup_and_cosine_schedules():
    lrs = _lrs(_optim_cfg("optim.warmup_steps=5"), 20)
    assert lrs[:5] == pytest.approx([0.01] * 5), "ResNet-110 warm-up: lr 0.01 first"
    assert lrs[5:10] == pytest.approx([0.1] * 5), "then back to 0.1"
    assert lrs[10:15] == pytest.approx([0.01] * 5) and lrs[15:] == pytest.approx([0.001] * 5)
    lrs = _lrs(_optim_cfg("optim=cosine"), 100)
    assert lrs[0] == pytest.approx(0.1)
    assert lrs[50] == pytest.approx(0.05, rel=1e-6)
    assert lrs[-1] < 1e-3 and all(x >= y for x, y in zip(lrs, lrs[1:], strict=False))
    assert lr_factor(100, 100, "cosine", [], 0.1, 0, 1.0) == pytest.approx(0.0, abs=1e-12)


# --------------------------------------------------------------------------------------------------------------
# Command line (background jobs; see the ``cli`` fixture)
# --------------------------------------------------------------------------------------------------------------


@needs_cli(*(f"bad_{k}" for k in BAD_INPUTS))
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_cli_bad_input(cli, case):
    name = f"bad_{case}"
    res = cli.result(name)
    root = str(cli.base / f"empty_{case}")
    err = assert_clean_failure(res, *(n.format(root=root) for n in BAD_INPUTS[case][1]))
    assert len([line for line in err.splitlines() if "error" in line.lower()]) == 1, err
    assert "\n\n" not in err.strip(), f"the error should be one paragraph:\n{err}"
    cwd = cli.cwd(name)
    assert not (cwd / "outputs").exists() and not (cwd / "multirun").exists(), "an output folder was created"
    assert list(cwd.iterdir()) == []
    assert list((cli.base / f"empty_{case}").iterdir()) == []


@needs_cli("nan")
def test_cli_nan_loss(cli):
    res = cli.result("nan")
    assert_clean_failure(res, "optim.lr")
    assert not list((cli.cwd("nan") / "run").rglob("summary.json"))


@needs_cli("wandb")
def test_cli_wandb_offline_without_key(cli):
    res = cli.result("wandb")
    assert not res["timed_out"], "the run hung (W&B prompt?)"
    assert res["rc"] == 0, res["stderr"][-3000:]
    run_dir = cli.cwd("wandb") / "run"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert sorted(p.name for p in cli.cwd("wandb").iterdir()) == ["run"], "stray output outside hydra.run.dir"
    offline = sorted((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1, f"expected one offline W&B run under {run_dir / 'wandb'}"
    assert not list((run_dir / "wandb").glob("run-*")), "an online run was started without an API key"
    logged = wandb_offline.read_run(offline[0])
    assert "history" in logged["kinds"] and "run" in logged["kinds"]
    history = {k: v for row in logged["history"] for k, v in row.items()}
    for key, expected in (("val/acc1", summary["val"]["val/acc1"]), ("test/acc1", summary["test"]["test/acc1"]),
                          ("test/loss", summary["test"]["test/loss"])):
        assert key in history, f"{key} was not logged to W&B (logged: {sorted(history)})"
        assert history[key] == pytest.approx(expected, rel=1e-6)
    assert logged["summary"].get("final/test/acc1") == pytest.approx(summary["test"]["test/acc1"], rel=1e-6)
    assert logged["config"].get("block") == "euler" and logged["config"].get("depth") == 8


def test_wandb_mode_never_needs_a_person(monkeypatch, tmp_path):
    """auto: online only with an API key AND a reachable server; otherwise offline (no login prompt)."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.setattr(loggers, "_reachable", lambda *a, **k: True)
    assert loggers.wandb_mode("auto") == "offline"
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password " + "0" * 40 + "\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert loggers.wandb_mode("auto") == "online"
    monkeypatch.setattr(loggers, "_reachable", lambda *a, **k: False)
    assert loggers.wandb_mode("auto") == "offline"
    (tmp_path / ".netrc").unlink()
    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    assert loggers.wandb_mode("auto") == "offline"
    monkeypatch.setattr(loggers, "_reachable", lambda *a, **k: True)
    assert loggers.wandb_mode("auto") == "online"
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert loggers.wandb_mode("auto") == "offline" and loggers.wandb_mode("online") == "offline"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert loggers.wandb_mode("auto") == "disabled"
    with pytest.raises(ConfigError, match="sometimes"):
        loggers.wandb_mode("sometimes")


@needs_cli("ddp")
def test_cli_ddp_on_cpu(cli):
    res = cli.result("ddp")
    assert not res["timed_out"], "DDP run did not finish in 240 s"
    assert res["rc"] == 0, res["stderr"][-3000:]
    summary = json.loads((cli.cwd("ddp") / "run" / "summary.json").read_text())
    assert summary["status"] == "finished"
    assert summary["config"]["trainer"]["strategy"] == "ddp" and summary["config"]["trainer"]["devices"] == 2
    assert "MEMBER: 2/2" in res["stderr"] + res["stdout"], "two DDP processes should have started"
    assert sorted(p.name for p in cli.cwd("ddp").iterdir()) == ["run"], "stray output outside hydra.run.dir"
    assert 0 <= summary["test"]["test/acc1"] <= 1


@needs_cli("sweep")
def test_cli_sweep(cli):
    res = cli.result("sweep")
    assert not res["timed_out"]
    assert res["rc"] == 0, res["stderr"][-3000:]
    out = cli.cwd("sweep") / "out"
    summaries = sorted(out.rglob("summary.json"))
    assert len(summaries) == 4, summaries
    members = {(s["config"]["block"], s["config"]["seed"]) for s in (json.loads(p.read_text()) for p in summaries)}
    assert members == {("euler", 0), ("euler", 1), ("midpoint", 0), ("midpoint", 1)}
    assert len({p.parent for p in summaries}) == 4 and all(p.parent.parent == out for p in summaries)
    runs = [wandb_offline.read_run(d) for p in summaries for d in (p.parent / "wandb").glob("offline-run-*")]
    assert len(runs) == 4, "one W&B run per sweep member"
    assert len({r["run"]["id"] for r in runs}) == 4
    assert {r["run"]["group"] for r in runs} == {"out"}, "sweep members are grouped by the sweep folder name"
    assert sorted((r["config"]["block"], r["config"]["seed"]) for r in runs) == sorted(members)
    # the sweep is a fair comparison (same depth, parameters and recipe)
    from horesnet.compare import compare

    rows, problems, _ = compare([str(out)], out=str(cli.base / "sweep" / "cmp"))
    assert problems == []
    assert sorted((r["block"], r["seeds"]) for r in rows) == [("euler", 2), ("midpoint", 2)]
