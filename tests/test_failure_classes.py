"""Classes of failure found by an adversarial matrix of real command lines, each fixed at its cause
(docs/reliability.md): a W&B server that answers with errors, a bad ``WANDB_MODE``; what fits the bad-input matrix's
shape (exit 2, one message) is in tests/test_bad_input_matrix.py."""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _cli_helpers import cli_env, run_cli  # noqa: E402
from _training_helpers import CLI_TINY  # noqa: E402

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
