"""Reliability pieces tested directly: the schema covers every key, checkpoints load with weights_only=True on
every path, the divergence guard never syncs per step and catches what the loss alone would not, W&B never
waits longer than its timeout. (The command-line matrix is tests/test_bad_input_matrix.py; kill -9 recovery is
tests/test_crash_resume.py.)"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import torch

from horesnet.cli.compose import compose
from horesnet.cli.schema import PRECISIONS, flatten, schema_for
from horesnet.errors import ConfigError
from horesnet.training import loggers
from horesnet.training.checkpoint import AtomicCheckpointIO, check_checkpoint
from horesnet.training.divergence import DivergedError, DivergenceGuard

from ._cli_helpers import (
    Evil,
    cli_env,
    run_cli,
)
from ._training_helpers import CLI_TINY, TINY, fit

# --------------------------------------------------------------------------------------------------------------
# The schema
# --------------------------------------------------------------------------------------------------------------


def _group_choices():
    from horesnet.cli.compose import _config_groups

    groups = _config_groups()
    return [f"{g}={c}" for g in ("data", "optim", "trainer", "logger", "experiment") for c in groups[g]]


@pytest.mark.parametrize("override", _group_choices())
def test_every_shipped_key_has_a_type_and_range(override):
    """A key added to a config without a schema entry would escape validation: each shipped option is covered."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_container(compose("fit", [override, "data.download=false"]), resolve=True)
    schema = schema_for("fit")  # with the registered datasets' own options
    uncovered = [k for k in flatten(cfg, schema=schema) if k not in schema and not k.startswith("trainer.")]
    assert uncovered == []


def test_precisions_are_lightnings_own():
    import typing

    from lightning_fabric import connector

    names = ("_PRECISION_INPUT_STR", "_PRECISION_INPUT_INT", "_PRECISION_INPUT_STR_ALIAS")
    assert set(PRECISIONS) == {v for n in names for v in typing.get_args(getattr(connector, n))}


@pytest.mark.parametrize("bad", ["learn_step=yes", "tied=0", "optim.nesterov=maybe", "data.augment=1"])
def test_booleans_accept_only_booleans(bad):
    with pytest.raises(ConfigError, match="true or false"):
        compose("fit", ["data=synthetic", bad])


# --------------------------------------------------------------------------------------------------------------
# Safe loading
# --------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("trained")
    fit(run, [*TINY, "depth=8", "data.limit_train=32", "trainer.max_epochs=1"])
    return run / "checkpoints" / "last.ckpt"


@pytest.fixture
def crafted(trained, tmp_path):
    ckpt = torch.load(trained, weights_only=True)
    marker = tmp_path / "PWNED"
    ckpt["state_dict"]["model.fc.bias"] = Evil(marker)
    path = tmp_path / "crafted.ckpt"
    torch.save(ckpt, path)
    return path, marker


def _load_paths():
    from horesnet.cli.analyze import load_trained

    return {"check_checkpoint": check_checkpoint, "lightning_checkpoint_io": AtomicCheckpointIO().load_checkpoint,
            "analyze_load_trained": load_trained}


@pytest.mark.parametrize("path_name", list(_load_paths()))
def test_crafted_checkpoint_runs_nothing_on_any_load_path(crafted, path_name):
    path, marker = crafted
    with pytest.raises(ConfigError, match="refused"):
        _load_paths()[path_name](path)
    assert not marker.exists(), "the crafted pickle ran its code"


def test_crafted_checkpoint_refused_when_resuming_in_process(crafted, tmp_path):
    path, marker = crafted
    with pytest.raises(ConfigError, match="refused"):
        fit(tmp_path / "run", [*TINY, "depth=8", f"resume={path}"])
    assert not marker.exists()


def test_trained_checkpoint_reloads_bitwise(trained):
    from horesnet.cli.analyze import load_trained

    model, data, _, cfg = load_trained(str(trained))
    saved = torch.load(trained, weights_only=True)["state_dict"]
    assert len(list(model.units())) == 3 and data["name"] == "synthetic"  # depth 8 = 6n+2: one unit per stage
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved[f"model.{key}"])


# --------------------------------------------------------------------------------------------------------------
# Divergence
# --------------------------------------------------------------------------------------------------------------


def test_guard_observes_without_host_sync(monkeypatch):
    guard = DivergenceGuard(check_every=50)

    def refuse(*_a, **_k):
        raise AssertionError("observe() read a device value on the host")

    for name in ("item", "__bool__", "tolist", "__float__"):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    for loss in (2.3, 1.0, float("nan"), 3.0):
        guard.observe(torch.tensor(loss))
    monkeypatch.undo()
    assert bool(guard.flag), "the NaN seen three steps earlier is remembered on the device"
    assert [s for s in range(1, 201) if guard.due(s, last_batch=False)] == [50, 100, 150, 200]


def test_guard_catches_a_finite_but_exploding_loss():
    guard = DivergenceGuard(max_loss=1e3)
    guard.observe(torch.tensor(1e25))
    with pytest.raises(DivergedError, match="1e\\+25"):
        guard.check(torch.nn.Linear(2, 2), "here")


def test_guard_catches_batchnorm_statistics_with_a_finite_loss():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2))
    guard = DivergenceGuard()
    guard.observe(torch.tensor(2.0))
    guard.check(model, "before")  # healthy
    model[1].running_var.fill_(float("inf"))
    with pytest.raises(DivergedError, match="1.running_var"):
        guard.check(model, "after")


def test_no_checkpoint_with_a_non_finite_tensor_is_written(tmp_path):
    io_ = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io_.save_checkpoint({"state_dict": {"w": torch.ones(3)}}, path)
    before = path.read_bytes()
    with pytest.raises(DivergedError, match="w holds NaN or inf"):
        io_.save_checkpoint({"state_dict": {"w": torch.tensor([1.0, float("inf")])}}, path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_explosion_after_warmup_stops_with_status_diverged(tmp_path):
    """lr 1e6 after a 2-step warm-up at 0.01: the first epoch is finite and checkpointed, then the run explodes."""
    overrides = [*TINY, "depth=8", "data.limit_train=64", "data.batch_size=32", "trainer.max_epochs=4",
                 "optim.lr=1e6", "optim.warmup_steps=2", "optim.warmup_lr=0.01"]
    with pytest.raises(DivergedError):
        fit(tmp_path, overrides)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "diverged" and "diverged" in summary["error"]
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 2, "the last finite checkpoint (end of the warm-up epoch) stays"
    assert all(torch.isfinite(t).all() for t in ckpt["state_dict"].values() if t.is_floating_point())


# --------------------------------------------------------------------------------------------------------------
# W&B never hangs
# --------------------------------------------------------------------------------------------------------------


class _Blackhole:
    """A TCP server that accepts connections and never answers (a network that swallows packets)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]

    def close(self):
        self.sock.close()


def test_reachable_gives_up_on_a_silent_server_and_accepts_any_http_answer():
    hole = _Blackhole()
    try:
        assert loggers._reachable(f"http://127.0.0.1:{hole.port}", timeout=0.5) is False
    finally:
        hole.close()

    class Answer(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(500)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert loggers._reachable(f"http://127.0.0.1:{server.server_port}", timeout=5) is True
    finally:
        server.shutdown()


def test_online_without_a_key_says_it_runs_offline(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("WANDB_MODE", "online")
    assert loggers.wandb_mode("auto") == "offline"
    assert "no API key" in capsys.readouterr().err
    monkeypatch.delenv("WANDB_MODE")
    assert loggers.wandb_mode("online") == "offline"
    assert "offline" in capsys.readouterr().err


def test_cli_online_with_a_key_but_a_silent_server_continues_offline(tmp_path):
    hole = _Blackhole()
    env = cli_env(home=tmp_path / "home")
    env.update(WANDB_API_KEY="0" * 40, WANDB_BASE_URL=f"http://127.0.0.1:{hole.port}")
    try:
        res = run_cli("horesnet.fit", [*(a for a in CLI_TINY if a != "logger=csv"), "logger=wandb",
                                       "logger.wandb.mode=online", "logger.wandb.timeout=2",
                                       f"hydra.run.dir={tmp_path / 'run'}"], tmp_path, env, timeout=150)
    finally:
        hole.close()
    assert not res["timed_out"], "W&B hung"
    assert res["rc"] == 0, res["stderr"][-3000:]
    assert "did not answer within 2 s" in res["stderr"]
    assert sorted((tmp_path / "run" / "wandb").glob("offline-run-*")), "the run should have logged offline"
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "finished"
