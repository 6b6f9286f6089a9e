"""Classes of failure found by an adversarial matrix of real command lines, each fixed at its cause
(docs/reliability.md): a W&B server that answers with errors, a bad ``WANDB_MODE``; what fits the bad-input matrix's
shape (exit 2, one message) is in tests/test_bad_input_matrix.py; weights whose BatchNorm variance is negative
(refused at load; past the checks, the divergence guard ends such a run "diverged")."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import torch

from horesnet.errors import ConfigError
from horesnet.training.divergence import DivergedError

from ._cli_helpers import cli_env, run_cli
from ._training_helpers import CLI_TINY

WANDB_TINY = [*(a for a in CLI_TINY if a != "logger=csv"), "logger=wandb"]


class _NotFound(BaseHTTPRequestHandler):
    """A server that answers every request, with 404 (a wrong WANDB_BASE_URL, a proxy's error page)."""

    def _answer(self):
        self.send_response(404)
        self.send_header("Content-Length", "9")
        self.end_headers()
        self.wfile.write(b"not found")

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args):
        pass


def test_online_against_a_server_that_answers_404_continues_offline(tmp_path):
    server = HTTPServer(("127.0.0.1", 0), _NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = cli_env(home=tmp_path / "home")
    env.update(WANDB_API_KEY="0" * 40, WANDB_BASE_URL=f"http://127.0.0.1:{server.server_port}")
    try:
        res = run_cli("horesnet.fit", [*WANDB_TINY, "logger.wandb.mode=online", "logger.wandb.timeout=3",
                                       f"hydra.run.dir={tmp_path / 'run'}"], tmp_path, env, timeout=200)
    finally:
        server.shutdown()
    assert not res["timed_out"], "W&B hung"
    assert res["rc"] == 0, res["stderr"][-3000:]
    assert "Traceback" not in res["stderr"], res["stderr"][-3000:]
    assert "starting an online run failed" in res["stderr"] and "logging offline instead" in res["stderr"]
    assert sorted((tmp_path / "run" / "wandb").glob("offline-run-*")), "the run should have logged offline"
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "finished"


def test_a_bad_wandb_mode_in_the_environment_is_refused_by_name(tmp_path):
    env = cli_env(home=tmp_path / "home")
    env["WANDB_MODE"] = "garbage"
    res = run_cli("horesnet.fit", [*WANDB_TINY, "logger.wandb.mode=offline"], tmp_path, env, timeout=150)
    assert res["rc"] == 2, res["stderr"][-3000:]
    assert "Traceback" not in res["stderr"]
    error = [line for line in res["stderr"].splitlines() if line.startswith("horesnet.fit: error: ")]
    assert len(error) == 1 and "WANDB_MODE='garbage'" in error[0] and "'offline'" in error[0], res["stderr"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"], "a refused run wrote files"


# ---------------------------------------------------------------- invalid BatchNorm statistics in weights=PATH
def _weights_with_negative_variance(path: Path) -> Path:
    import horesnet
    from horesnet.models.torchvision import to_torchvision_state_dict

    state = to_torchvision_state_dict(horesnet.build_model(arch="imagenet", depth=18, num_classes=10))
    state["bn1.running_var"] = -state["bn1.running_var"].abs() - 1.0
    torch.save(state, path)
    return path


IMAGENET_TINY = [o for o in CLI_TINY if not o.startswith(("depth=", "width="))] + [
    "arch=imagenet", "depth=18", "data.limit_train=8", "data.limit_val=8", "data.limit_test=8",
    "data.batch_size=4", "data.eval_batch_size=8"]


def test_weights_with_a_negative_running_var_are_refused_by_name(tmp_path):
    from horesnet.cli.preflight import preflight

    path = _weights_with_negative_variance(tmp_path / "bad.pth")
    with pytest.raises(ConfigError, match=r"weights=.*bad\.pth: .*running_var holds negative values"):
        preflight("fit", [*IMAGENET_TINY, f"weights={path}", f"hydra.run.dir={tmp_path / 'run'}"])
    assert not (tmp_path / "run").exists()


def test_the_guard_stops_a_run_whose_batchnorm_variance_is_negative(tmp_path):
    """Past the checks (an in-process run_fit), such weights end the run "diverged", never "finished"."""
    from ._training_helpers import fit

    path = _weights_with_negative_variance(tmp_path / "bad.pth")
    with pytest.raises(DivergedError, match="running_var holds negative values"):
        fit(tmp_path / "run", [*IMAGENET_TINY, f"weights={path}"])
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "diverged"


def test_a_non_finite_validation_loss_is_a_diverged_run(tmp_path, monkeypatch):
    """Whatever makes evaluation compute NaN (the weight scan switched off here), the run ends "diverged"."""
    from horesnet.training.divergence import DivergenceGuard

    from ._training_helpers import fit

    path = _weights_with_negative_variance(tmp_path / "bad.pth")
    monkeypatch.setattr(DivergenceGuard, "problem", lambda self, model: None)
    with pytest.raises(DivergedError, match="validation loss is nan"):
        fit(tmp_path / "run", [*IMAGENET_TINY, f"weights={path}"])
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "diverged"


# ---------------------------------------------------------------- a one-image last training batch
def test_an_imagenet_network_trains_when_the_last_batch_would_hold_one_image(tmp_path):
    """9 images in batches of 4: the lone ninth is dropped (BatchNorm's 1x1 last stage cannot take one image)."""
    from ._training_helpers import fit

    overrides = [o for o in IMAGENET_TINY if not o.startswith("data.limit_train=")]
    summary = fit(tmp_path / "run", [*overrides, "width=0.25", "data.limit_train=9"])
    assert summary["status"] == "finished"


def test_only_a_remainder_of_one_is_dropped():
    from horesnet.data import ArrayDataModule

    def batches(n: int, batch: int) -> int:
        data = ArrayDataModule(name="synthetic", batch_size=batch, limit_train=n, val_size=8)
        data.setup("fit")
        return len(data.train_dataloader())

    assert [batches(9, 4), batches(10, 4), batches(11, 4), batches(8, 4), batches(5, 1)] == [2, 3, 3, 2, 5]
