"""Tests of the fit command line (bad input: tests/test_bad_input_matrix.py): NaN loss, W&B offline logging (and
the W&B mode choice), DDP on CPU and a Hydra sweep.

Expected values come from files read back independently (summary.json, the W&B offline log with
tests/wandb_offline.py).

The command-line tests are slow to start (each imports torch and Lightning), so they are started together in
a small background pool as soon as this module's first test runs, and run while the other tests do.
"""

from __future__ import annotations

import json
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from horesnet.errors import ConfigError
from horesnet.training import loggers

from . import wandb_offline
from ._cli_helpers import cli_env, run_cli
from ._training_helpers import CLI_TINY

# --------------------------------------------------------------------------------------------------------------
# Command-line jobs, run in the background
# --------------------------------------------------------------------------------------------------------------

def _jobs(base: Path) -> dict[str, tuple]:
    """name -> (module, args, cwd, env, timeout); folders are created here."""
    jobs = {}
    for d in ("ddp", "sweep", "wandb", "wandb_home", "sweep_home", "nan"):
        (base / d).mkdir()
    jobs["ddp"] = ("horesnet.fit", ["trainer=ddp", "trainer.devices=2", *CLI_TINY, "data.limit_train=64",
                                    f"hydra.run.dir={base / 'ddp' / 'run'}"], base / "ddp", cli_env(), 240)
    # a sweep logs one W&B run per member, grouped by the sweep folder's name (offline here: no API key)
    jobs["sweep"] = ("horesnet.fit", ["-m", "block=euler,midpoint", "seed=0,1", *CLI_TINY, "depth=20",
                                      "logger=wandb", f"hydra.sweep.dir={base / 'sweep' / 'out'}"],
                     base / "sweep", cli_env(home=base / "sweep_home"), 240)
    # logger=wandb (the default), mode auto, no API key anywhere (HOME without .netrc): must go offline by itself
    jobs["wandb"] = ("horesnet.fit", [*(a for a in CLI_TINY if a != "logger=csv"), "logger=wandb",
                                      f"hydra.run.dir={base / 'wandb' / 'run'}"], base / "wandb",
                     cli_env(home=base / "wandb_home"), 180)
    jobs["nan"] = ("horesnet.fit", [*CLI_TINY, "trainer.max_epochs=3", "optim.lr=1e30",
                                    f"hydra.run.dir={base / 'nan' / 'run'}"], base / "nan", cli_env(), 180)
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
        self.futures: dict[str, Future] = {n: self.pool.submit(run_cli, *self.specs[n]) for n in names}

    def result(self, name: str) -> dict:
        if name not in self.futures:  # not pre-started (test selected on its own): run now
            self.futures[name] = self.pool.submit(run_cli, *self.specs[name])
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
    order = ["ddp", "sweep", "wandb", "nan"]
    pool = CliPool(tmp_path_factory.mktemp("cli"), [n for n in order if n in wanted])
    yield pool
    pool.pool.shutdown(wait=True, cancel_futures=True)


def assert_clean_failure(res: dict, rc: int, *names: str) -> str:
    assert not res["timed_out"], "the command hung"
    err = res["stderr"]
    assert res["rc"] == rc, f"expected exit status {rc}, got {res['rc']}\n{err[-2000:]}"
    assert "Traceback" not in err and 'File "' not in err, f"a traceback instead of a message:\n{err[-3000:]}"
    assert "error" in err.lower(), err[-2000:]
    for name in names:
        assert name in err, f"the message does not name {name!r}:\n{err[-2000:]}"
    return err


# --------------------------------------------------------------------------------------------------------------
# Command line (background jobs; see the ``cli`` fixture)
# --------------------------------------------------------------------------------------------------------------


@needs_cli("nan")
def test_cli_nan_loss(cli):
    res = cli.result("nan")
    assert_clean_failure(res, 3, "optim.lr", "diverged")  # a diverged run exits with status 3
    summary = json.loads((cli.cwd("nan") / "run" / "summary.json").read_text())
    assert summary["status"] == "diverged" and "optim.lr" in summary["error"] and "test" not in summary


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
    model = logged["config"]["model"]  # the config is stored once, nested (no flat copy of the model options)
    assert model["block"] == "euler" and model["depth"] == 8 and "block" not in logged["config"]


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
    # Lightning's information lines are in the run's logs (fit.log; the second process's own log), not the console
    log = res["stderr"] + res["stdout"] + "".join(p.read_text() for p in (cli.cwd("ddp") / "run").glob("*.log"))
    assert "MEMBER: 1/2" in log and "MEMBER: 2/2" in log, "two DDP processes should have started"
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
    assert sorted((r["config"]["model"]["block"], r["config"]["seed"]) for r in runs) == sorted(members)
    # the sweep is a fair comparison (same depth, parameters and recipe)
    from horesnet.comparison.table import compare

    rows, problems, _ = compare([str(out)], out=str(cli.base / "sweep" / "cmp"))
    assert problems == []
    assert sorted((r["block"], r["seeds"]) for r in rows) == [("euler", 2), ("midpoint", 2)]
