"""horesnet.runs: the run folder's layout (spelled here independently, so that a change to it shows) and the
``summary.json`` record: round trip, old files without ``summary_version``, a newer version refused by name."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from horesnet import runs
from horesnet.errors import ConfigError
from horesnet.runs import READS, SUMMARY_VERSION, Summary

RESULTS = Path(__file__).resolve().parent.parent / "experiments" / "results"
OLD = [RESULTS / "runs" / "euler-d56-s0" / "summary.json",
       RESULTS / "converged" / "runs" / "euler-d56-s0" / "summary.json"]


def test_the_layout(tmp_path):
    run = tmp_path / "run"
    assert runs.last_checkpoint(run) == run / "checkpoints" / "last.ckpt"
    assert runs.best_checkpoint(run) == run / "checkpoints" / "best.ckpt"
    assert runs.summary_path(run) == run / "summary.json"
    assert runs.progress_path(run) == run / "progress.json"
    assert runs.metrics_path(run) == run / "metrics.csv"
    assert runs.overrides_path(run) == run / ".hydra" / "overrides.yaml"
    assert runs.config_path(run) == run / ".hydra" / "config.yaml"
    assert runs.lock_path(run) == run / "fit.lock"
    assert runs.fit_log_path(run) == run / "fit.log"
    assert runs.analysis_dir(run) == run / "analysis"


def test_run_folder_of_a_checkpoint(tmp_path):
    assert runs.run_folder_of(tmp_path / "r" / "checkpoints" / "last.ckpt") == tmp_path / "r"
    assert runs.run_folder_of(tmp_path / "r" / "checkpoints" / "best.ckpt") == tmp_path / "r"
    assert runs.run_folder_of(tmp_path / "elsewhere" / "model.ckpt") == tmp_path / "elsewhere"
    assert runs.run_folder_of(runs.last_checkpoint(tmp_path / "x")) == tmp_path / "x"


def test_checkpoint_at_a_folder_or_a_file(tmp_path):
    (tmp_path / "r").mkdir()
    assert runs.checkpoint_at(tmp_path / "r") == tmp_path / "r" / "checkpoints" / "last.ckpt"
    assert runs.checkpoint_at(tmp_path / "a.ckpt") == tmp_path / "a.ckpt"


def test_unfinished(tmp_path):
    run = tmp_path / "r"
    assert not runs.unfinished(run)
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert runs.unfinished(run)
    (run / "summary.json").write_text("{}")
    assert not runs.unfinished(run)


def test_find_runs_finds_every_summary_and_ignores_other_folders(tmp_path):
    for name in ("sweep/b", "sweep/a", "sweep/a/nested", "single"):
        (tmp_path / name).mkdir(parents=True, exist_ok=True)
        (tmp_path / name / "summary.json").write_text("{}")
    (tmp_path / "sweep" / "not_a_run" / "wandb").mkdir(parents=True)
    (tmp_path / "sweep" / "not_a_run" / "wandb" / "wandb-summary.json").write_text("{}")
    (tmp_path / "sweep" / "dir_named" / "summary.json").mkdir(parents=True)  # a folder, not a record
    (tmp_path / "sweep" / "fifo_run").mkdir()
    os.mkfifo(tmp_path / "sweep" / "fifo_run" / "summary.json")  # a FIFO: opening it would block forever
    found = runs.find_runs([tmp_path / "sweep", tmp_path / "single" / "summary.json", tmp_path / "absent"])
    assert [f.relative_to(tmp_path).as_posix() for f in found] == [
        "sweep/a/nested/summary.json", "sweep/a/summary.json", "sweep/b/summary.json", "single/summary.json"]
    assert runs.find_runs(tmp_path / "single") == [tmp_path / "single" / "summary.json"]
    assert runs.find_runs([tmp_path / "sweep" / "not_a_run"]) == []


RECORD = {"status": "finished", "run_dir": "/r", "config": {"block": "rk4", "depth": 20, "seed": 0},
          "model": {"params": 270000, "macs": None, "units_per_stage": [3, 3, 3]}, "resumed_from": None,
          "version": "0.1.0", "git_commit": None, "torch": "2.5", "device": "cpu", "wandb": None,
          "cpu": "AMD EPYC", "cpus": ["AMD EPYC"], "cpu_changed": False, "epochs_done": 2, "train_time_s": 3.5,
          "images_per_sec": 400.0, "best_checkpoint": "/r/checkpoints/best.ckpt", "val": {"val/acc1": 0.5},
          "is_global_zero": True, "test": {"test/acc1": 0.51}, "wall_time_s": 5.0, "a_later_key": [1]}


def test_summary_round_trip(tmp_path):
    runs.write_summary(tmp_path, RECORD)
    text = (tmp_path / "summary.json").read_text()
    written = json.loads(text)
    assert written == {"summary_version": SUMMARY_VERSION, **RECORD}
    assert list(written) == ["summary_version", *RECORD], "the writer's keys in the writer's order"
    assert text == json.dumps({"summary_version": SUMMARY_VERSION, **RECORD}, indent=2)
    s = Summary.load(tmp_path / "summary.json")
    assert (s.status, s.test, s.model["params"], s.cpus, s.extra) == ("finished", {"test/acc1": 0.51}, 270000,
                                                                      ["AMD EPYC"], {"a_later_key": [1]})
    assert s.to_dict() == written and s.to_json() == text
    assert Summary.from_dict(s.to_dict()) == s


def test_summary_null_and_absent_keys_stay_as_written(tmp_path):
    interrupted = {"status": "interrupted", "signal": "SIGTERM", "where": None, "run_dir": "/r", "epochs_done": 0,
                   "last_checkpoint": None, "position": None}
    runs.write_progress(tmp_path, interrupted)
    assert json.loads((tmp_path / "progress.json").read_text()) == {"summary_version": 1, **interrupted}
    assert not (tmp_path / "summary.json").exists()
    built = Summary(status="stopped", epochs_done=1)  # made field by field: only what is set is written
    assert built.to_dict() == {"summary_version": 1, "status": "stopped", "epochs_done": 1}


def test_a_non_finite_number_is_written_as_null(tmp_path):
    runs.write_summary(tmp_path, {"status": "stopped", "val": {"val/loss": float("nan")}})
    text = (tmp_path / "summary.json").read_text()
    assert "NaN" not in text and json.loads(text)["val"] == {"val/loss": None}


@pytest.mark.parametrize("path", OLD, ids=["runs", "converged"])
def test_an_old_summary_without_version_loads(path):
    if not path.is_file():
        pytest.skip(f"{path} is not in this checkout")
    raw = json.loads(path.read_text())
    assert "summary_version" not in raw
    s = Summary.load(path)
    assert s.summary_version == 1 and s.status == "finished" and s.version == raw["version"]
    assert 0 < s.test["test/acc1"] <= 1 and s.model["params"] == raw["model"]["params"]
    assert s.extra == {}, "every key of today's format is a field"
    assert s.to_dict() == {"summary_version": 1, **raw}


def test_a_newer_version_is_refused_by_name(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({**RECORD, "summary_version": 7}))
    with pytest.raises(ConfigError) as err:
        Summary.load(tmp_path / "summary.json")
    message = str(err.value)
    assert "summary_version 7" in message and f"version {READS[0]}" in message and "summary.json" in message
    for bad in ("2", True, None):
        with pytest.raises(ConfigError, match="summary_version"):
            Summary.from_dict({**RECORD, "summary_version": bad})


def test_compare_refuses_a_newer_version_by_name(tmp_path):
    from horesnet.comparison.summaries import load_runs

    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "summary.json").write_text(json.dumps({"summary_version": 99, "status": "finished"}))
    with pytest.raises(ConfigError, match=r"summary_version 99.*reads version 1"):
        load_runs([str(tmp_path)])


def test_not_a_record(tmp_path):
    (tmp_path / "summary.json").write_text("[1]")
    with pytest.raises(ConfigError, match="not a horesnet run summary.*list"):
        Summary.load(tmp_path / "summary.json")
    (tmp_path / "summary.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not a readable summary.json"):
        Summary.load(tmp_path / "summary.json")
    with pytest.raises(ConfigError, match="'status'"):
        Summary.from_dict({"config": {}})
